"""Delivery benchmark (issue 4): accepted 4 KB registered deliveries per second against a
baseline measured in the same run.

Sets up from scratch (private PostgreSQL cluster, fresh dev PKI with its OCSP/CRL/TSA
service), starts ``vep serve`` as its own process, registers a sender and a recipient
through the real API, then N clients with client certificates and keep-alive connections
submit 4 KB registered deliveries for the given time — all the same multipart body,
encoded once, on uvloop like the servers, so that the load generator takes as little of
the shared cores as it can (encoding a form per request cost it twice the CPU, and a
heavier client held the cheaper baseline back more than VEP). The baseline is
``baseline_server.py``: the same TLS context and multipart body, one asyncpg INSERT, no
certificate check, no encryption, no evidence, run with as many processes as VEP
(``--workers``). Loopback only, bounded in time.

The two take turns (``--rounds``, default 3: baseline, VEP, baseline, VEP, ...), each for
its share of ``--seconds``, and the rates are over all their rounds: on a shared machine
whose other load comes and goes, one long phase each let that load fall on one side only
(the same code measured 0.32× and 0.42× in two runs an hour apart). The per-round ratios
are shown as a range.

Besides deliveries/s and latency it reports the CPU each party spent per delivery — the
server processes, PostgreSQL (the postmaster and its backends) and this load generator —
read from ``/proc`` over the same windows (``cpu.py``): on a machine where all three share
the cores, that is what says where the time goes. "CPU vs baseline" is the baseline's CPU
per delivery, all parties together, over VEP's: the ratio the machine allows once it is
the limit rather than one server process.

Usage: ``make bench-deliveries`` or
``python ops/bench/deliveries.py --seconds 30 --connections 16``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import uvloop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ops.bench.auth_bench import free_port, pct, wait_http  # noqa: E402
from ops.bench.cpu import CpuWindow, postmaster_pid  # noqa: E402
from server.devpki.generate import DevPki, generate  # noqa: E402
from server.tls import client_context  # noqa: E402
from server.tools.sign import async_sign_pades  # noqa: E402

PAYLOAD = os.urandom(4096)
ADDRESS = {"street": "Dunajska cesta 1", "postcode": "1000", "city": "Ljubljana"}


def client(pki: DevPki, identity: str, base: str) -> aiohttp.ClientSession:
    ssl = client_context(pki.root, pki.directory / f"{identity}.chain.pem", pki.key(identity))
    return aiohttp.ClientSession(
        base_url=base,
        connector=aiohttp.TCPConnector(ssl=ssl, limit=1),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def register(pki: DevPki, base: str, identity: str, local: str, tax: str) -> None:
    body = {
        "kind": "natural",
        "local_part": local,
        "tax_number": tax,
        "email": "a@b.si",
        "postal_address": ADDRESS,
        "birth_date": "1980-01-01",
        "accept_terms": True,
        "accept_price_list": True,
        "admin_password": "benchmark password",
    }
    async with client(pki, identity, base) as c:
        async with c.post("/api/v1/registrations", json=body) as r:
            started = await r.json()
            assert r.status == 201, started
        async with c.get(started["contract"]) as r:
            pdf = await r.read()
        signed = await async_sign_pades(pdf, pki.p12(identity).read_bytes(), b"vep")
        async with c.put(
            started["sign_at"], data=signed, headers={"Content-Type": "application/pdf"}
        ) as r:
            assert r.status == 201, await r.text()


async def body() -> tuple[bytes, str]:
    """The one multipart/form-data body every client sends (and its Content-Type),
    written once by aiohttp's own writer: encoding a form per request cost the load
    generator more CPU than reading the answer, on the cores the servers need."""
    data = aiohttp.FormData()
    meta = {"to": ["dejan@vep.si"], "subject": "Bench", "message": "x", "kind": "registered"}
    data.add_field("metadata", json.dumps(meta), content_type="application/json")
    data.add_field("file", PAYLOAD, filename="doc.txt", content_type="text/plain")
    writer = data()
    chunks: list[bytes] = []

    class Sink:
        async def write(self, chunk: bytes) -> None:
            chunks.append(bytes(chunk))

    await writer.write(Sink())  # type: ignore[arg-type]
    return b"".join(chunks), writer.content_type


@dataclass(frozen=True)
class Phase:
    """One stretch of load against one server."""

    done: int
    elapsed: float
    latencies: list[float]
    cpu_seconds: dict[str, float]  # per party, over the same window


@dataclass(frozen=True)
class Result:
    """One server's phases, together."""

    name: str
    phases: list[Phase]

    @property
    def rate(self) -> float:
        return sum(p.done for p in self.phases) / sum(p.elapsed for p in self.phases)

    @property
    def latencies(self) -> list[float]:
        return [latency for p in self.phases for latency in p.latencies]

    @property
    def cpu_ms(self) -> dict[str, float]:
        """CPU milliseconds per delivery, per party."""
        done = sum(p.done for p in self.phases)
        parties = self.phases[0].cpu_seconds
        return {k: 1000 * sum(p.cpu_seconds[k] for p in self.phases) / done for k in parties}


async def load(
    pki: DevPki,
    base: str,
    path: str,
    seconds: float,
    connections: int,
    parties: Mapping[str, tuple[tuple[int, ...], bool]],
) -> Phase:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    payload, content_type = await body()

    async def worker() -> None:
        async with client(pki, "qualified-qscd", base) as c:
            while time.monotonic() < stop:
                started = time.perf_counter()
                async with c.post(path, data=payload, headers={"Content-Type": content_type}) as r:
                    await r.read()
                    assert r.status == 201, r.status
                latencies.append((time.perf_counter() - started) * 1000)

    began = time.monotonic()
    window = CpuWindow.start(parties)
    await asyncio.gather(*(worker() for _ in range(connections)))
    cpu = window.stop()
    return Phase(len(latencies), time.monotonic() - began, latencies, cpu)


async def run(seconds: float, connections: int, tsa: str, workers: int, rounds: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="vep-bench-"))
    pg = ROOT / "ops" / "dev" / "pg.sh"
    dsn = subprocess.run(
        [str(pg), "start", str(work)], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    pki = generate(work / "pki", f"http://127.0.0.1:{free_port()}")
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "server", "dev-pki", "serve", "--dir", str(pki.directory)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        wait_http(pki.admin_url("healthz"))
        admin = await asyncpg.connect(dsn)
        for name in ("vep_bench", "vep_baseline"):
            await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        port, base_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VEP_")}
        env.update(
            VEP_DATABASE_URL=dsn.replace("/postgres?", "/vep_bench?"),
            VEP_DATA_DIR=str(work),
            VEP_LISTEN=f"127.0.0.1:{port}",
            VEP_LOG_LEVEL="WARNING",
        )
        if tsa == "local":
            env["VEP_TSA_URL"] = "local"
        env["VEP_WORKERS"] = str(workers)
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(server)
        assert server.stdout is not None
        server.stdout.readline()
        baseline = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "ops" / "bench" / "baseline_server.py"),
                dsn.replace("/postgres?", "/vep_baseline?"),
                str(work),
                str(base_port),
                str(workers),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(baseline)
        assert baseline.stdout is not None
        for _ in range(workers):
            baseline.stdout.readline()
        vep = f"https://127.0.0.1:{port}"
        await register(pki, vep, "qualified-qscd", "ana", "10000003")
        await register(pki, vep, "delegate", "dejan", "12345679")
        postgres = ((postmaster_pid(work / "pg-cluster"),), True)
        client = ((os.getpid(),), False)
        targets = [
            (
                f"https://127.0.0.1:{base_port}",
                "/submit",
                {"server": ((baseline.pid,), True), "postgres": postgres, "client": client},
            ),
            (
                vep,
                "/api/v1/mailboxes/ana@vep.si/deliveries",
                {"server": ((server.pid,), True), "postgres": postgres, "client": client},
            ),
        ]
        # Baseline and VEP take turns, so that a change in what else the machine runs
        # weighs on both alike rather than on whichever ran while it lasted.
        phases: list[list[Phase]] = [[], []]
        for _ in range(rounds):
            for measured, (base, path, parties) in zip(phases, targets, strict=True):
                measured.append(await load(pki, base, path, seconds / rounds, connections, parties))
        rows = [
            Result(f"baseline: TLS + multipart + one INSERT ({workers} proc.)", phases[0]),
            Result(
                f"VEP: registered delivery, 4 KB, 2 evidences ({tsa} TSA, {workers} proc.)",
                phases[1],
            ),
        ]
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=15)
        subprocess.run([str(pg), "destroy", str(work)], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)  # the dev PKI's keys and the content files
    return report(rows, seconds, connections, rounds)


def report(rows: list[Result], seconds: float, connections: int, rounds: int) -> str:
    """The table: rates and latency over all rounds; the ratio of the rates, with the
    range of the per-round ratios; CPU per delivery per party, and the ratio of the CPU
    all parties spent per delivery (what decides on a machine whose cores they share)."""
    base = rows[0]
    base_cpu = sum(base.cpu_ms.values())
    lines = [
        f"{connections} clients with client certificates, keep-alive, {seconds:.0f} s each in "
        f"{rounds} alternating rounds; CPU ms per delivery from /proc over the same windows:",
        "",
        "| measurement | deliveries/s | p50 ms | p99 ms | vs baseline (rounds) "
        "| CPU server | CPU PostgreSQL | CPU client | CPU vs baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lat, cpu = row.latencies, row.cpu_ms
        per_round = [
            p.done / p.elapsed / (b.done / b.elapsed)
            for p, b in zip(row.phases, base.phases, strict=True)
        ]
        lines.append(
            f"| {row.name} | {row.rate:,.0f} | {statistics.median(lat):.1f} "
            f"| {pct(lat, 0.99):.1f} | {row.rate / base.rate:.2f}× "
            f"({min(per_round):.2f}–{max(per_round):.2f}) "
            f"| {cpu['server']:.2f} | {cpu['postgres']:.2f} | {cpu['client']:.2f} "
            f"| {base_cpu / sum(cpu.values()):.2f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--tsa",
        choices=["service", "local"],
        default="local",
        help="the dev TSA over HTTP (certomancer) or the in-process local TSA",
    )
    parser.add_argument("--workers", type=int, default=1, help="VEP server processes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating baseline/VEP rounds (seconds split)"
    )
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the servers
        print(runner.run(run(args.seconds, args.connections, args.tsa, args.workers, args.rounds)))


if __name__ == "__main__":
    main()
