"""Run a job once: under its advisory lock, recorded in ``job_runs`` (R8.7).

A scheduled run serves a *slot* (:meth:`Schedule.slot` of the injected clock's now). Under
the lock the runner first marks runs of dead nodes ``abandoned``, then skips the slot if a
run already finished it, else records a ``running`` row, does the work and records the
outcome. So when several nodes fire the same slot, one runs it and the others find it
done; when a node starts after downtime, :meth:`JobRunner.catch_up` runs every job whose
current slot has no successful run — once — and :meth:`JobRunner.run_if_behind`, asked
every minute, runs a slot again after a failure, backing off (R8.7). Manual runs (``vep
run-job``) always run, and so does a polling job (the outbox, ``once_per_slot=False``),
whose rows are claimed one by one.

Only ordinary exceptions are recorded as ``failed``; a cancelled task or a killed process
leaves the row ``running``, exactly as a crash would, and the next run abandons it.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import asyncpg

from ..clock import Clock
from ..store import job_runs
from .base import Job, JobContext
from .schedule import Schedule

if TYPE_CHECKING:
    from ..services.container import Services
    from ..store.db import Connection

log = logging.getLogger(__name__)

Status = Literal["ran", "failed", "already_done", "busy", "not_due"]

#: The wait after a slot's first unsuccessful attempt; it doubles with each further one.
RETRY_FIRST = timedelta(minutes=1)
#: The longest wait between two attempts at one slot.
RETRY_MOST = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """How long after its last attempt a slot tried ``attempts`` times is tried again:
    1, 2, 4 … minutes, at most an hour."""
    if attempts <= 0:
        return timedelta(0)
    return min(RETRY_FIRST * (1 << min(attempts - 1, 16)), RETRY_MOST)


@dataclass(frozen=True)
class RunResult:
    job: str
    status: Status
    slot: datetime
    items: int = 0
    run_id: int | None = None
    error: str | None = None


def node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _due(seen: job_runs.SlotAttempts, now: datetime) -> bool:
    """Whether a slot with these attempts is to be tried (again) at ``now``."""
    if seen.done:
        return False
    return seen.last is None or now >= seen.last + retry_delay(seen.attempts)


class UnknownJob(KeyError):
    pass


class JobRunner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        jobs: Mapping[str, Job],
        schedules: Mapping[str, Schedule],
        services: Services,
        node: str | None = None,
        lock_pool: asyncpg.Pool | None = None,
    ) -> None:
        self._pool = pool
        # The lock connections stay idle in a transaction for a whole run: the server
        # gives them a small pool of their own, so that running jobs never take the
        # connections requests need.
        self._lock_pool = lock_pool or pool
        self._clock = clock
        self.jobs = dict(jobs)
        self.schedules = {name: schedules.get(name, job.schedule) for name, job in jobs.items()}
        self._services = services
        self.node = node or node_name()

    def schedule(self, name: str) -> Schedule:
        if name not in self.jobs:
            raise UnknownJob(name)
        return self.schedules[name]

    async def run(self, name: str, *, manual: bool = False, backoff: bool = False) -> RunResult:
        """One run of ``name``: the current slot when scheduled, always when manual;
        ``backoff``: only once the wait after the slot's last attempt has passed, as
        judged under the lock (``not_due`` before)."""
        job = self.jobs.get(name)
        if job is None:
            raise UnknownJob(name)
        now = self._clock.now()
        slot = now if manual else self.schedules[name].slot(now)
        # The lock lives in a transaction of its own connection, held open for the run: it
        # ends with that transaction however the run ends (returned, raised, cancelled, or
        # the process killed and its connection lost), with no session state to undo on a
        # pooled connection. The run's rows are written outside it, so others see them.
        async with self._lock_pool.acquire() as lock, lock.transaction():
            if not await job_runs.try_lock(lock, name):
                return RunResult(name, "busy", slot)
            return await self._locked(lock, job, slot, now, manual, backoff)

    async def _locked(
        self, lock: Connection, job: Job, slot: datetime, now: datetime, manual: bool, backoff: bool
    ) -> RunResult:
        conn = self._pool
        abandoned = await job_runs.abandon_running(conn, job.name, now)
        if abandoned:
            log.warning("job %s: %d run(s) of a lost node marked abandoned", job.name, abandoned)
        trigger: job_runs.Trigger = (
            "manual" if manual else "schedule" if job.once_per_slot else "poll"
        )
        if trigger == "schedule" and backoff:
            # read again under the lock: another node's attempt may have just ended, and
            # N nodes must not make N attempts per step of the back-off
            seen = await job_runs.slot_attempts(conn, job.name, slot)
            if seen.done:
                return RunResult(job.name, "already_done", slot)
            if not _due(seen, now):
                return RunResult(job.name, "not_due", slot)
        elif trigger == "schedule" and await job_runs.slot_done(conn, job.name, slot):
            return RunResult(job.name, "already_done", slot)
        run_id = await job_runs.start(conn, job.name, trigger, slot, self.node, now)
        count = 0

        async def done(items: int) -> None:
            nonlocal count
            count += items
            # The heartbeat of the lock: if its connection was lost, another node may hold
            # the lock now, and this run stops here (its items so far are committed).
            await job_runs.heartbeat(lock)
            await job_runs.progress(conn, run_id, count)

        judged = slot if trigger == "schedule" else now
        context = JobContext(services=self._services, now=judged, done=done)
        try:
            items = await job.work(context)
        except Exception as exc:
            # The class and where only: messages may carry addresses or data (R9.5).
            error = type(exc).__name__
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            log.error(
                "job %s failed (run %d) after %d item(s): %s at %s",
                job.name,
                run_id,
                count,
                error,
                f"{where.filename}:{where.lineno}" if where else "?",
            )
            await job_runs.finish(conn, run_id, "failed", count, self._clock.now(), error)
            return RunResult(job.name, "failed", slot, count, run_id, error)
        items = max(items, count)
        if items == 0 and trigger == "poll":
            await job_runs.forget(conn, run_id)
        else:
            await job_runs.finish(conn, run_id, "ok", items, self._clock.now())
            log.info("job %s done (run %d): %d item(s)", job.name, run_id, items)
        return RunResult(job.name, "ran", slot, items, run_id)

    async def run_if_behind(self, name: str) -> RunResult | None:
        """Run the current slot of ``name`` if no run finished it and the back-off after its
        last attempt has passed; ``None`` when there was nothing to do yet.

        Why: a daily job fires once a day, so a run that failed on a passing outage (the
        TSA or the database away at 01:05) would otherwise wait a whole day, and with it
        every deemed service (R5.3), closure (R8.3) or purge (R8.1) it was to make. The
        decision is read from ``job_runs`` and the injected clock, so every node agrees on
        it and :meth:`run` still makes the slot run once. A slot never attempted (a firing
        lost while the process was stopped or busy) runs at once. A retried run judges as
        of its slot, like the first. Polling jobs are left to their own firing.
        """
        job = self.jobs.get(name)
        if job is None:
            raise UnknownJob(name)
        if not job.once_per_slot:
            return None
        now = self._clock.now()
        slot = self.schedules[name].slot(now)
        if not _due(await job_runs.slot_attempts(self._pool, name, slot), now):
            return None  # a cheap look first; :meth:`run` decides under the lock
        result = await self.run(name, backoff=True)
        return None if result.status == "not_due" else result

    async def catch_up(self, names: list[str] | None = None) -> list[RunResult]:
        """At start: run each job whose current slot has no successful run (missed ones)."""
        results = []
        for name in names if names is not None else list(self.jobs):
            results.append(await self.run(name))
        return results
