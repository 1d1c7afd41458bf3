"""``job_runs``: one row per run of a scheduled job (R8.7).

A run holds the job's transaction-level advisory lock, in a transaction kept open on a
connection of its own for the whole run, so two nodes never run the same job at once; a
node that dies loses the connection and with it the lock, and the next run finds its row
still ``running`` and marks it ``abandoned``. The partial unique index ``job_runs_once``
keeps one live or successful scheduled run per (job, slot), which is what "runs once
across nodes" means here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import asyncpg

if TYPE_CHECKING:
    from typing import TypeAlias

    from .db import Connection

    #: A connection, or the pool for a statement of its own (autocommit).
    Executor: TypeAlias = Connection | asyncpg.Pool

#: Advisory lock namespace (first key) of the jobs; the second key is hashtext(job name).
JOB_LOCK_NAMESPACE = 0x5645_5002

Trigger = Literal["schedule", "manual", "poll"]
Outcome = Literal["running", "ok", "failed", "abandoned"]


@dataclass(frozen=True)
class JobRun:
    run_id: int
    job: str
    trigger: Trigger
    slot: datetime
    node: str
    started_at: datetime
    finished_at: datetime | None
    outcome: Outcome
    items: int
    error: str | None


def _run(row: asyncpg.Record) -> JobRun:
    return JobRun(**dict(row))


async def try_lock(conn: Connection, job: str) -> bool:
    """The job's advisory lock until the caller's transaction ends, if nobody holds it."""
    locked = bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock($1, hashtext($2))", JOB_LOCK_NAMESPACE, job
        )
    )
    if locked:
        await heartbeat(conn)
    return locked


async def heartbeat(conn: Connection) -> None:
    """A round trip on the lock's connection (raises if it was lost) that also lets go of
    the last statement's snapshot: the transaction stays open for the whole run, and the
    unnamed portal of an extended-protocol query kept its snapshot — and with it the
    database's xmin, so VACUUM cleaned nothing while a long job ran (found in review). A
    simple-protocol query destroys that portal."""
    await conn.execute("SELECT 1")


async def abandon_running(conn: Executor, job: str, now: datetime) -> int:
    """Runs left ``running`` by a dead node (the caller holds the lock, so none is alive)."""
    status = await conn.execute(
        """UPDATE job_runs SET outcome = 'abandoned', finished_at = $2, error = 'node lost'
           WHERE job = $1 AND outcome = 'running'""",
        job,
        now,
    )
    return int(status.split()[-1])


async def slot_done(conn: Executor, job: str, slot: datetime) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM job_runs WHERE job = $1 AND slot = $2
                              AND trigger = 'schedule' AND outcome = 'ok')""",
            job,
            slot,
        )
    )


@dataclass(frozen=True)
class SlotAttempts:
    """What scheduled runs a slot has had: whether one finished it, how many did not (failed,
    abandoned, or still running), and when the last of those ended (or began). A scheduled
    run starts at or after its slot, which lets ``job_runs_latest`` (job, started_at) find
    them. Manual runs do not count: they serve no slot."""

    done: bool
    attempts: int
    last: datetime | None


async def slot_attempts(conn: Executor, job: str, slot: datetime) -> SlotAttempts:
    row = await conn.fetchrow(
        """SELECT coalesce(bool_or(outcome = 'ok'), false) AS done,
                  count(*) FILTER (WHERE outcome <> 'ok') AS attempts,
                  max(coalesce(finished_at, started_at)) AS last
           FROM job_runs WHERE job = $1 AND slot = $2 AND trigger = 'schedule'
                AND started_at >= $2""",
        job,
        slot,
    )
    assert row is not None  # an aggregate always answers one row
    return SlotAttempts(row["done"], row["attempts"], row["last"])


async def start(
    conn: Executor, job: str, trigger: Trigger, slot: datetime, node: str, now: datetime
) -> int:
    run_id: int = await conn.fetchval(
        """INSERT INTO job_runs (job, trigger, slot, node, started_at, outcome)
           VALUES ($1, $2, $3, $4, $5, 'running') RETURNING run_id""",
        job,
        trigger,
        slot,
        node,
        now,
    )
    return run_id


async def progress(conn: Executor, run_id: int, items: int) -> None:
    await conn.execute("UPDATE job_runs SET items = $2 WHERE run_id = $1", run_id, items)


async def finish(
    conn: Executor,
    run_id: int,
    outcome: Outcome,
    items: int,
    now: datetime,
    error: str | None = None,
) -> None:
    await conn.execute(
        """UPDATE job_runs SET outcome = $2, items = $3, finished_at = $4, error = $5
           WHERE run_id = $1""",
        run_id,
        outcome,
        items,
        now,
        error,
    )


async def forget(conn: Executor, run_id: int) -> None:
    """Drop an idle run of a frequent job (the outbox every few seconds): nothing to keep."""
    await conn.execute("DELETE FROM job_runs WHERE run_id = $1", run_id)


class JobRunStore:
    """Reading the runs (``vep jobs``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def latest(self) -> dict[str, JobRun]:
        rows = await self.pool.fetch(
            """SELECT DISTINCT ON (job) run_id, job, trigger, slot, node, started_at,
                      finished_at, outcome, items, error
               FROM job_runs ORDER BY job, started_at DESC, run_id DESC"""
        )
        return {row["job"]: _run(row) for row in rows}
