"""``vep run-job NAME [--now ISO]``: run a scheduled job by hand (the scheduler that runs
them on time, once across nodes, comes with the lifecycle work, R8.7)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

import aiohttp

from .clock import ManualClock, SystemClock
from .content.keys import load_master_key
from .content.store import FileContentStore
from .evidence.factory import sealer_from_settings
from .services.wiring import build_services
from .settings import Settings
from .store.db import create_pool
from .trust.validation import CertificateChecker, load_certificates

JOBS = ("deemed-service", "content-sweep")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    job = subparsers.add_parser("run-job", help="run a scheduled job now")
    job.add_argument("name", choices=JOBS)
    job.add_argument("--now", help="ISO time to run the job at (default: now)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.fromisoformat(args.now) if args.now else None
    if now is not None and now.tzinfo is None:
        raise SystemExit("vep: --now needs a timezone, e.g. 2026-12-06T12:00:00+00:00")

    async def job() -> int:
        clock = ManualClock(now) if now else SystemClock()
        pool = await create_pool(settings.database_url, max_size=2)
        try:
            async with aiohttp.ClientSession() as http:
                checker = CertificateChecker(
                    load_certificates(settings.anchor_paths),
                    load_certificates(settings.intermediate_paths),
                    settings.revocation,
                    http,
                )
                content = FileContentStore(
                    settings.data_dir / "content",
                    load_master_key(settings.effective_content_key_file),
                )
                services = build_services(
                    settings, clock, pool, checker, content, sealer_from_settings(settings, http)
                )
                if args.name == "content-sweep":
                    report = await services.content_sweep.run(clock.now())
                    return len(report.removed) + report.partials_removed
                return await services.acceptance.deemed_service(clock.now())
        finally:
            await pool.close()

    done = asyncio.run(job())
    what = "file(s) removed" if args.name == "content-sweep" else "delivery(ies) deemed served"
    print(f"vep: {args.name}: {done} {what}")
    return 0
