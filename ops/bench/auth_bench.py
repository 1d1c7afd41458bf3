"""Authentication benchmark: what certificate login costs against a baseline in the same run.

Sets up from scratch like the tests (private PostgreSQL cluster, fresh dev PKI and its live
OCSP/CRL service), starts ``vep serve`` as its own process, and loads it over real TLS with
keep-alive connections from this process (loopback only, bounded in time):

- baseline: ``GET /healthz`` — TLS + aiohttp, no authentication;
- session:  ``GET /api/v1/session`` with a session cookie — cached certificate check (R1.3),
  session row read + touch in PostgreSQL;
- fresh check: one full path validation with a live OCSP fetch, as at the first request and
  at every revalidation (called in-process, sequentially).

Usage: ``make bench`` (or ``python ops/bench/auth_bench.py --seconds 5 --connections 16``).
Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.devpki.generate import DevPki, generate  # noqa: E402
from server.store import migrate  # noqa: E402
from server.tls import client_context  # noqa: E402
from server.trust.validation import CertificateChecker, load_certificates  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def load(
    url: str, pki: DevPki, identity: str | None, seconds: float, connections: int
) -> tuple[float, list[float]]:
    """Requests per second and latencies (ms) over ``seconds`` with ``connections`` workers."""
    ssl_ctx = (
        client_context(pki.root, pki.directory / f"{identity}.chain.pem", pki.key(identity))
        if identity
        else client_context(pki.root)
    )
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def worker() -> None:
        connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=1)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as client:
            async with client.get(url) as r:  # warm-up: handshake, session cookie
                await r.read()
            while time.monotonic() < stop:
                started = time.perf_counter()
                async with client.get(url) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append((time.perf_counter() - started) * 1000)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - began
    return len(latencies) / elapsed, latencies


async def fresh_checks(pki: DevPki, count: int) -> list[float]:
    anchors = load_certificates([pki.root])
    intermediates = load_certificates([pki.cert("qualified-ca")])
    der = pki.cert("qualified-qscd").read_bytes()
    timings = []
    async with aiohttp.ClientSession() as http:
        checker = CertificateChecker(anchors, intermediates, "require", http)
        for _ in range(count):
            started = time.perf_counter()
            await checker.check(der, datetime.now(UTC))
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(seconds: float, connections: int, checks: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="vep-bench-"))
    pg = ROOT / "ops" / "dev" / "pg.sh"
    dsn = subprocess.run(
        [str(pg), "start", str(work)], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    pki = generate(work / "pki", f"http://127.0.0.1:{free_port()}")
    pki_proc = subprocess.Popen(
        [sys.executable, "-m", "server", "dev-pki", "serve", "--dir", str(pki.directory)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        wait_http(pki.admin_url("healthz"))
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE DATABASE vep_bench")
        await conn.close()
        db = dsn.replace("/postgres?", "/vep_bench?")
        conn = await asyncpg.connect(db)
        await migrate.apply(conn)
        await conn.close()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VEP_")}
        env.update(
            VEP_DATABASE_URL=db,
            VEP_DATA_DIR=str(work),
            VEP_LISTEN=f"127.0.0.1:{port}",
            VEP_LOG_LEVEL="WARNING",
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        server.stdout.readline()
        base = f"https://127.0.0.1:{port}"
        rows = []
        for name, path, identity in (
            ("baseline `GET /healthz` (TLS, no auth)", "/healthz", None),
            ("`GET /api/v1/session` (cached check + session)", "/api/v1/session", "qualified"),
        ):
            rps, lat = await load(base + path, pki, identity, seconds, connections)
            rows.append((name, rps, statistics.median(lat), pct(lat, 0.99)))
        fresh = await fresh_checks(pki, checks)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        pki_proc.terminate()
        pki_proc.wait(timeout=10)
        subprocess.run([str(pg), "destroy", str(work)], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)  # the dev PKI's keys and the content files

    baseline = rows[0][1]
    lines = [
        f"{connections} keep-alive connections, {seconds:.0f} s each, one server process, "
        f"client in a second process on the same 2-core machine:",
        "",
        "| measurement | req/s | p50 ms | p99 ms | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rps, p50, p99 in rows:
        lines.append(f"| {name} | {rps:,.0f} | {p50:.1f} | {p99:.1f} | {rps / baseline:.2f}× |")
    lines.append(
        f"| fresh check: path + live OCSP, sequential ({checks}×) | "
        f"{1000 / statistics.median(fresh):,.0f} | {statistics.median(fresh):.1f} | "
        f"{pct(fresh, 0.99):.1f} | — |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--checks", type=int, default=50)
    args = parser.parse_args()
    print(asyncio.run(run(args.seconds, args.connections, args.checks)))


if __name__ == "__main__":
    main()
