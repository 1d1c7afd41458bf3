"""``vep serve``: one process, or several sharing the port (``VEP_WORKERS``).

One Python process uses one core; with ``VEP_WORKERS=N`` the parent starts N worker
processes that each listen on the same address with ``SO_REUSEPORT`` (the kernel spreads
connections among them). Each worker is a whole node: its own pool, certificate cache and
outbox worker; what must happen once is already claimed in PostgreSQL (migrations under an
advisory lock, outbox rows with SKIP LOCKED). SIGINT/SIGTERM to the parent stops them all;
a worker whose parent was killed outright stops by itself.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from types import FrameType

import uvloop
from aiohttp import web

from . import logs
from .settings import Settings

#: How often a worker looks whether ``vep serve`` is still its parent.
PARENT_CHECK_SECONDS = 1.0


def _exit_with(parent: int) -> None:
    """Stop this worker gracefully once ``parent`` is gone. SIGINT/SIGTERM to the parent
    stop the workers (see :func:`serve`), but a parent killed outright (SIGKILL, an OOM
    kill) cannot, and its workers would go on serving, unsupervised, on the shared port.
    A parent's death shows as a changed ``getppid()`` (POSIX: the child is re-parented);
    SIGTERM to itself then takes aiohttp's graceful shutdown path."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="vep-parent-watch", daemon=True).start()


def new_event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """The loop a server process runs on (``VEP_EVENT_LOOP``)."""
    if settings.event_loop == "uvloop":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def freeze_startup_heap(app: web.Application) -> None:
    """After start-up, move what start-up made (modules, the trust anchors, the templates,
    the keys: most of the process's objects) out of the garbage collector's generations
    (``gc.freeze``). A full collection still comes now and then under load (about once
    per 10 s of CPU in the delivery benchmark); without this it walked the whole start-up
    heap, ~50 ms during which no request moved, and with it ~3 ms (measured with
    ``gc.callbacks``; issue 4)."""
    gc.collect()
    gc.freeze()


def _run(settings: Settings, reuse_port: bool, announce: bool, parent: int | None = None) -> None:
    from .app import create_app
    from .tls import server_context

    if parent is not None:
        _exit_with(parent)
    logs.setup(settings.log_level)
    ssl_context = server_context(settings) if settings.tls else None
    scheme = "https" if settings.tls else "http"
    url = f"{scheme}://{settings.listen_host}:{settings.listen_port}"
    app = create_app(settings)
    app.on_startup.append(freeze_startup_heap)  # after the resources' start-up (cleanup_ctx)
    web.run_app(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        ssl_context=ssl_context,
        access_log=None,
        reuse_port=reuse_port or None,
        print=(lambda _: print(f"vep: serving {url}", flush=True)) if announce else None,
        loop=new_event_loop(settings),
    )


def dev_pki_warning(settings: Settings) -> str | None:
    """Found in review: ``VEP_DEV_PKI`` defaults to on, so a deployment that configures its
    real anchors or TLS certificate and forgets it still trusts the development root, whose
    key lies in the data directory, for logins. Said at every start."""
    if settings.dev_pki and (settings.trust_anchors or settings.tls_cert is not None):
        return (
            "vep: WARNING: VEP_DEV_PKI is on beside real trust anchors or a real TLS "
            f"certificate: the development root ({settings.pki_dir / 'root-ca.pem'}) is "
            "trusted for logins too. Set VEP_DEV_PKI=off in production."
        )
    return None


def serve(settings: Settings) -> int:
    if (warning := dev_pki_warning(settings)) is not None:
        print(warning, file=sys.stderr, flush=True)
    if settings.workers == 1:
        _run(settings, reuse_port=False, announce=True)
        return 0
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_run, args=(settings, True, i == 0, os.getpid()), name=f"vep-worker-{i}"
        )
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: aiohttp shuts down gracefully

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for worker in workers:
        worker.join()
    failed = [w.exitcode for w in workers if w.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        print(f"vep: a worker exited with {failed}", file=sys.stderr)
        return 1
    return 0
