"""``vep run-job NAME [--now ISO]`` runs a job by hand; ``vep jobs`` lists every job with its
rule, schedule, last run and next run (R8.7).

A manual run takes the job's advisory lock like a scheduled one (so it never overlaps a
run on a server node) and is recorded in ``job_runs`` as ``manual``; ``--now`` runs it as of
an earlier moment (the injected clock), e.g. to catch up as of the time a run was missed;
never a later one.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta

from .cli_services import cli_services
from .clock import Clock, ManualClock, SystemClock
from .jobs.catalog import catalog
from .jobs.runner import RunResult
from .jobs.setup import job_runner
from .settings import Settings
from .store.job_runs import JobRunStore

EXIT = {"ran": 0, "already_done": 0, "busy": 3, "failed": 1}
#: Clocks of two machines may differ a little.
FUTURE_SLACK = timedelta(minutes=1)


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    job = subparsers.add_parser("run-job", help="run a scheduled job now (R8.7)")
    job.add_argument("name", choices=[*sorted(catalog(None)), "outbox"])
    job.add_argument("--now", help="ISO time to run the job at (default: now)")
    subparsers.add_parser("jobs", help="list the jobs with their last and next run (R8.7)")


def _clock(text: str | None) -> Clock:
    """``--now``: a moment in the past (a rule judged then does less than now, never more).
    A future one would really purge, close and remind ahead of time, so it is refused."""
    if text is None:
        return SystemClock()
    try:
        now = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"vep: --now {text!r} is not an ISO time") from None
    if now.tzinfo is None:
        raise SystemExit("vep: --now needs a timezone, e.g. 2026-12-06T12:00:00+00:00")
    if now > SystemClock().now() + FUTURE_SLACK:
        raise SystemExit(
            "vep: --now is in the future; a job run as of then would act ahead of time on "
            "real data (rehearse rules in the tests, which move a clock)"
        )
    return ManualClock(now.astimezone(UTC))


def run(args: argparse.Namespace, settings: Settings) -> int:
    clock = _clock(args.now)

    async def job() -> RunResult:
        async with cli_services(settings, clock) as services:
            runner = job_runner(settings, clock, services, None)
            return await runner.run(args.name, manual=True)

    result = asyncio.run(job())
    if result.status == "busy":
        print(f"vep: {args.name}: running on another node now; not started")
    elif result.status == "failed":
        print(f"vep: {args.name}: FAILED ({result.error}) after {result.items} item(s)")
    else:
        print(f"vep: {args.name}: done, {result.items} item(s) (run {result.run_id})")
    return EXIT[result.status]


def list_jobs(args: argparse.Namespace, settings: Settings) -> int:
    clock = SystemClock()

    async def rows() -> list[tuple[str, ...]]:
        async with cli_services(settings, clock) as services:
            runner = job_runner(settings, clock, services, None)
            latest = await JobRunStore(services.pool).latest()
        now = clock.now()
        out: list[tuple[str, ...]] = []
        for name, spec in runner.jobs.items():
            schedule = runner.schedule(name)
            last = latest.get(name)
            last_text = (
                f"{last.started_at:%Y-%m-%d %H:%M:%S} {last.outcome} ({last.items})"
                if last
                else "never"
            )
            next_run = schedule.next_after(now)
            out.append(
                (name, spec.rule, str(schedule), last_text, f"{next_run:%Y-%m-%d %H:%M:%S}Z")
            )
        return out

    table = [("JOB", "RULE", "SCHEDULE (UTC)", "LAST RUN", "NEXT RUN"), *asyncio.run(rows())]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0
