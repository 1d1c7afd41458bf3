"""The baseline of the delivery benchmark: a bare aiohttp handler on the same TLS context and
event loop (uvloop) as VEP (client certificates requested, same anchors), reading the same
multipart body and inserting one row with asyncpg — no certificate check, no encryption,
no evidence.

Usage (started by deliveries.py): python baseline_server.py DSN DATA_DIR PORT [PROCESSES]

With PROCESSES > 1 it runs that many processes on the port (``SO_REUSEPORT``), as
``VEP_WORKERS`` does for VEP, so that the two are compared with the same number of cores.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from pathlib import Path

import asyncpg
import uvloop
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.settings import Settings  # noqa: E402
from server.tls import server_context  # noqa: E402

POOL = web.AppKey("pool", asyncpg.Pool)
DSN = web.AppKey("dsn", str)


async def submit(request: web.Request) -> web.Response:
    reader = await request.multipart()
    meta = b""
    data = b""
    while (part := await reader.next()) is not None:
        body = await part.read()  # type: ignore[union-attr]
        if part.name == "metadata":  # type: ignore[union-attr]
            meta = body
        else:
            data += body
    await request.app[POOL].execute(
        "INSERT INTO bench_deliveries (metadata, content) VALUES ($1, $2)", meta, data
    )
    return web.json_response({"ok": True}, status=201)


async def pool_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    pool = await asyncpg.create_pool(app[DSN], min_size=2, max_size=10)
    assert pool is not None
    async with pool.acquire() as conn, conn.transaction():
        # Several processes start at once: one creates the table, the others wait for it.
        await conn.execute("SELECT pg_advisory_xact_lock(4242)")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS bench_deliveries (
                   id bigserial PRIMARY KEY, metadata bytea, content bytea,
                   created_at timestamptz DEFAULT now())"""
        )
    app[POOL] = pool
    yield
    await pool.close()


def serve(dsn: str, data_dir: Path, port: int, reuse_port: bool) -> None:
    """One process; prints ``ready`` once it listens (deliveries.py waits for each)."""
    settings = Settings(database_url=dsn, data_dir=data_dir)
    app = web.Application()
    app[DSN] = dsn
    app.router.add_post("/submit", submit)
    app.cleanup_ctx.append(pool_ctx)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        ssl_context=server_context(settings),
        access_log=None,
        reuse_port=reuse_port or None,
        print=lambda _: print("ready", flush=True),
        loop=uvloop.new_event_loop(),  # the loop VEP serves on by default
    )


def main() -> None:
    dsn, data_dir, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    processes = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if processes == 1:
        serve(dsn, data_dir, port, reuse_port=False)
        return
    context = multiprocessing.get_context("spawn")
    # Daemonic, and SIGTERM turned into SystemExit: on its way out multiprocessing
    # terminates the workers. (By default SIGTERM killed only this process, and the
    # workers stayed on, idle but holding CPU time and the port, after every bench run.)
    workers = [
        context.Process(target=serve, args=(dsn, data_dir, port, True), daemon=True)
        for _ in range(processes)
    ]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
