"""The in-process scheduler: APScheduler 3.11 fires, :class:`JobRunner` decides (R8.7).

Every node runs one. APScheduler only says "a slot may be due now"; whether the slot is
run, and by whom, is settled in PostgreSQL by the runner (advisory lock + ``job_runs``).
``coalesce`` and ``max_instances=1`` keep a slow job from piling up in one process; a slot
missed while the process was down is run once by :meth:`JobRunner.catch_up` at start,
and every ``retry_seconds`` the scheduler asks :meth:`JobRunner.run_if_behind` whether a
slot that failed (or whose firing was lost) is due again, so a daily job does not wait a
day after a passing outage.
(APScheduler 4 is an alpha that breaks with the anyio in use here.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import UTC
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .runner import JobRunner

log = logging.getLogger(__name__)

#: How often each scheduled job is asked whether its current slot is due again.
RETRY_SECONDS = 60.0


class JobScheduler:
    def __init__(
        self, runner: JobRunner, names: list[str], retry_seconds: float = RETRY_SECONDS
    ) -> None:
        self._runner = runner
        self._names = names
        self._retry_seconds = retry_seconds
        self._aps: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._running: set[str] = set()
        self._retrying: set[str] = set()
        self._stopping = False

    def start(self) -> None:
        """Register the triggers and run missed slots once (call inside the event loop)."""
        aps = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
        for name in self._names:
            aps.add_job(
                self._fire,
                self._runner.schedule(name).trigger(),
                args=[name],
                id=name,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        aps.add_job(
            self._retry,
            IntervalTrigger(seconds=self._retry_seconds, timezone=UTC),
            id="retry",
            name="retry",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        aps.start()
        self._aps = aps
        self._spawn(self._runner.catch_up(self._names), "jobs-catch-up")

    async def _fire(self, name: str) -> None:
        # Run it as our own task (stop() cancels it) and return at once; a job still
        # running from the last firing is simply not started again (the outbox polls
        # faster than a slow SMTP server answers, and that is not worth a warning).
        if name in self._running or self._stopping:
            return
        self._running.add(name)
        task = self._spawn(self._runner.run(name), f"job-{name}")
        task.add_done_callback(lambda _: self._running.discard(name))

    async def _retry(self) -> None:
        # Not marked running: a firing that lands meanwhile must still start (the lock
        # lets only one of the two run). The runner leaves polling jobs alone.
        for name in self._names:
            if name not in self._running and name not in self._retrying and not self._stopping:
                self._ask(name)

    def _ask(self, name: str) -> None:
        self._retrying.add(name)
        task = self._spawn(self._runner.run_if_behind(name), f"job-retry-{name}")
        task.add_done_callback(lambda _: self._retrying.discard(name))

    def _spawn(self, coro: Coroutine[Any, Any, object], name: str) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the class only, as the runner logs failures (R9.5: no data in logs)
            log.error("job task %s ended with %s", task.get_name(), type(exc).__name__)

    async def stop(self) -> None:
        """Stop firing and cancel running jobs: their rows stay ``running`` until abandoned."""
        self._stopping = True
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        # Firings already handed to APScheduler's executor return at once (see _fire);
        # let them, so that none is cancelled inside APScheduler (it would log an error).
        for _ in range(3):
            await asyncio.sleep(0)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
