"""A failed scheduled run is tried again within its slot, backing off (R8.7): a daily job
that met a passing outage does not wait for the next day, and with it the deemed services
(R5.3), closures and purges it was to make."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from server.jobs.base import Job, JobContext
from server.jobs.runner import JobRunner, retry_delay
from server.jobs.schedule import Schedule
from server.jobs.scheduler import JobScheduler
from tests.conftest import PkiService
from tests.integration.test_jobs import wait_for
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration

SLOT = datetime(2027, 2, 3, 1, 5, tzinfo=UTC)


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        yield running


class Outage:
    """A job that fails its first ``failures`` runs, noting the moment each judged at."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.judged: list[datetime] = []

    async def __call__(self, ctx: JobContext) -> int:
        self.judged.append(ctx.now)
        if len(self.judged) <= self.failures:
            raise ConnectionRefusedError("the TSA is away")
        return 1


def _runner(server: RunningServer, work: Outage, schedule: str = "daily 01:05") -> JobRunner:
    job = Job("outage", "R8.7", "fails while the outage lasts", Schedule.parse(schedule), work)
    return JobRunner(server.services.pool, server.clock, {"outage": job}, {}, server.services)


async def _outcomes(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT outcome FROM job_runs WHERE job = 'outage' ORDER BY run_id")
    return [row["outcome"] for row in rows]


def test_r8_7_the_wait_doubles_from_a_minute_up_to_an_hour() -> None:
    assert [retry_delay(n) for n in (0, 1, 2, 3, 6, 7, 40)] == [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=32),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


async def test_r8_7_a_failed_daily_slot_is_retried_after_its_back_off(
    server: RunningServer,
) -> None:
    work = Outage(failures=2)
    runner = _runner(server, work)
    pool = server.services.pool
    server.clock.set(SLOT + timedelta(milliseconds=4))
    assert (await runner.run("outage")).status == "failed"
    # the first attempt ended at the clock's time: one minute from then, not before
    ended = SLOT + timedelta(milliseconds=4)
    server.clock.set(ended + timedelta(seconds=59, microseconds=999_999))
    assert await runner.run_if_behind("outage") is None
    server.clock.set(ended + timedelta(minutes=1))
    again = await runner.run_if_behind("outage")
    assert again is not None and again.status == "failed"
    # the second failure waits two minutes
    ended = server.clock.now()
    server.clock.set(ended + timedelta(minutes=1, seconds=59))
    assert await runner.run_if_behind("outage") is None
    server.clock.set(ended + timedelta(minutes=2))
    third = await runner.run_if_behind("outage")
    assert third is not None and (third.status, third.items) == ("ran", 1)
    # done: nothing more in this slot, however late
    server.clock.set(SLOT + timedelta(hours=23))
    assert await runner.run_if_behind("outage") is None
    assert await _outcomes(pool) == ["failed", "failed", "ok"]
    # every attempt judged its rules as of the slot, not of the retry
    assert work.judged == [SLOT, SLOT, SLOT]


async def test_r8_7_the_back_off_is_judged_again_under_the_lock(server: RunningServer) -> None:
    """Two nodes that both saw a slot due: the second takes the lock after the first's
    attempt ended, and must find the new back-off, not make one more attempt at once."""
    work = Outage(failures=5)
    runner = _runner(server, work)
    server.clock.set(SLOT + timedelta(minutes=1))
    assert (await runner.run("outage")).status == "failed"
    # what a node that looked before that failure would now do
    late = await runner.run("outage", backoff=True)
    assert late.status == "not_due"
    assert len(work.judged) == 1
    server.clock.set(SLOT + timedelta(minutes=2))
    assert (await runner.run("outage", backoff=True)).status == "failed"
    assert await _outcomes(server.services.pool) == ["failed", "failed"]


async def test_r8_7_a_slot_never_attempted_runs_and_a_poll_job_is_left_alone(
    server: RunningServer,
) -> None:
    work = Outage(failures=0)
    runner = _runner(server, work)
    server.clock.set(SLOT + timedelta(hours=5))  # the 01:05 firing was lost
    result = await runner.run_if_behind("outage")
    assert result is not None and (result.status, result.slot) == ("ran", SLOT)
    assert await runner.run_if_behind("outage") is None
    # the next day's slot is a new one
    server.clock.set(SLOT + timedelta(days=1))
    result = await runner.run_if_behind("outage")
    assert result is not None and (result.status, result.slot) == ("ran", SLOT + timedelta(days=1))

    polled = Outage(failures=1)
    job = Job("poll", "R8.7", "polls", Schedule.parse("every 2s"), polled, once_per_slot=False)
    poller = JobRunner(server.services.pool, server.clock, {"poll": job}, {}, server.services)
    assert await poller.run_if_behind("poll") is None
    assert polled.judged == []


async def test_r8_7_the_scheduler_retries_a_failed_slot_of_its_own_accord(
    server: RunningServer,
) -> None:
    """Wired: the scheduler's catch-up at start fails, and its periodic question (here
    every 50 ms instead of every minute) runs the slot again once the clock has moved past
    the back-off — and not before."""
    work = Outage(failures=1)
    runner = _runner(server, work)
    server.clock.set(SLOT + timedelta(seconds=1))
    scheduler = JobScheduler(runner, ["outage"], retry_seconds=0.05)
    scheduler.start()
    try:
        await wait_for(lambda: _outcomes(server.services.pool), ["failed"])
        await asyncio.sleep(0.3)  # several questions asked: none is due yet
        assert await _outcomes(server.services.pool) == ["failed"]
        server.clock.set(SLOT + timedelta(seconds=1, minutes=1))
        await wait_for(lambda: _outcomes(server.services.pool), ["failed", "ok"])
    finally:
        await scheduler.stop()
    assert work.judged == [SLOT, SLOT]
