"""Group commit of submissions (R5.1, R9.1; :mod:`server.store.submission_writer`): what
arrives during a commit shares the next one, yet every submission keeps its own answer,
its own audit record and the rule that 201 means durable.

A commit is held open by another session holding the audit chain's head row, which every
submission must lock: the writer's statement waits there, and what is written meanwhile
queues up behind it. Rows written by one transaction share their ``xmin``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio

from server.store.audit import AuditHeadMissing, AuditStore
from server.store.db import create_pool
from server.store.deliveries import NewEvidence, PartRow
from server.store.submission_writer import OutcomeUnknown, SubmissionWriter, definite
from server.store.submissions import NewSubmission, RecipientInactive, SenderRefused

pytestmark = pytest.mark.integration

WORLD = """
INSERT INTO persons VALUES ('p1', 'Ana', 'Novak', 'Ana Novak', now(), now());
INSERT INTO certificates VALUES ('f1', 'p1', 'CN=CA', '1', 'CN=Ana', now(),
    now() + interval '1 year', '\\x00', now(), now(), 'high');
INSERT INTO subscribers (subscriber_id, kind, name, tax_number, postal_address, email,
                         created_at)
     VALUES ('00000000-0000-0000-0000-000000000001', 'natural', 'Ana', '1', '{}', 'a@b.si',
             now());
INSERT INTO mailboxes (address, local_part, domain, subscriber_id, kind, state, display_name,
                       directory_listed, admin_password_hash, created_at)
SELECT local || '@vep.si', local, 'vep.si', '00000000-0000-0000-0000-000000000001',
       'single', 'active', local, false, 'x', now()
  FROM (VALUES ('ana'), ('dejan'), ('eva')) l(local);
INSERT INTO memberships (address, person_id, role, permissions, added_at, added_by)
     VALUES ('ana@vep.si', 'p1', 'custodian', '{read,send,accept,manage}', now(), 'test');
"""


def submission(to: str = "dejan@vep.si") -> NewSubmission:
    now = datetime.now(UTC)
    delivery_id = uuid.uuid4()
    return NewSubmission(
        delivery_id=delivery_id,
        kind="registered",
        sender_address="ana@vep.si",
        sender_person_id="p1",
        sender_fingerprint="f1",
        subject="Vabilo",
        message="",
        reference=None,
        submitted_at=now,
        wrapped_key=b"k" * 60,
        key_version=1,
        parts=[PartRow(0, "a.txt", "text/plain", 1, "00" * 32, delivery_id.hex, 41, None)],
        recipients=[to],
        awaiting_acceptance=False,
        evidence=[NewEvidence(uuid.uuid4(), None, "SubmissionAcceptance", now, b"<a/>", "0", True)],
        notify_kind="delivery_waiting",
    )


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 1, 4)
    await pool.execute(WORLD)
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture
async def holder(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A session that can hold the audit chain's head row, and so any commit, open."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def until(check: Callable[[], object], what: str) -> None:
    for _ in range(500):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def blocked_on_lock(pool: asyncpg.Pool) -> int:
    """The backend of the writer's statement once it waits for the head row's lock."""
    pid: int | None = None

    async def waiting() -> bool:
        nonlocal pid
        pid = await pool.fetchval(
            """SELECT pid FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE 'WITH delivery AS%'"""
        )
        return pid is not None

    await until(waiting, "the writer's statement to wait for the audit head")
    assert pid is not None
    return pid


Tasks = tuple["asyncio.Task[None]", list["asyncio.Task[None]"], int]


async def queue_behind(
    writer: SubmissionWriter, pool: asyncpg.Pool, first: NewSubmission, later: list[NewSubmission]
) -> Tasks:
    """Write ``first`` (nothing is under way: it goes at once, and waits for the held head
    row), then queue ``later`` behind it. Returns their tasks and the waiting backend."""
    alone = asyncio.create_task(writer.write(first))
    backend = await blocked_on_lock(pool)
    batch = [asyncio.create_task(writer.write(s)) for s in later]
    await until(lambda: writer.queued == len(later), f"{len(later)} queued submissions")
    return alone, batch, backend


async def written(pool: asyncpg.Pool, items: list[NewSubmission]) -> dict[uuid.UUID, int]:
    """The transaction (xmin) that wrote each of ``items`` that is in the table."""
    rows = await pool.fetch(
        "SELECT delivery_id, xmin::text::bigint AS tx FROM deliveries WHERE delivery_id = ANY($1)",
        [s.delivery_id for s in items],
    )
    return {r["delivery_id"]: r["tx"] for r in rows}


async def test_submissions_arriving_during_a_commit_share_the_next_one(
    pool: asyncpg.Pool, holder: asyncpg.Connection
) -> None:
    writer = SubmissionWriter(pool)
    first, *later = [submission() for _ in range(4)]
    async with holder.transaction():
        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
        alone, batch, _ = await queue_behind(writer, pool, first, later)
        assert not alone.done()
    await asyncio.gather(alone, *batch)
    tx = await written(pool, [first, *later])
    assert len(tx) == 4
    assert len({tx[s.delivery_id] for s in later}) == 1  # one transaction for the three
    assert tx[first.delivery_id] != tx[later[0].delivery_id]
    report = await AuditStore(pool).verify()
    assert report.ok and report.records == 4  # each its own record, chained in order
    assert await pool.fetchval("SELECT count(*) FROM evidence") == 4


async def test_a_refused_submission_does_not_refuse_its_batch(
    pool: asyncpg.Pool, holder: asyncpg.Connection
) -> None:
    """R5.6: a recipient that stopped being active refuses that submission only."""
    writer = SubmissionWriter(pool)
    await pool.execute("UPDATE mailboxes SET state = 'suspended' WHERE address = 'eva@vep.si'")
    first, good, refused, other = submission(), submission(), submission("eva@vep.si"), submission()
    async with holder.transaction():
        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
        alone, batch, _ = await queue_behind(writer, pool, first, [good, refused, other])
    outcomes = await asyncio.gather(alone, *batch, return_exceptions=True)
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], RecipientInactive) and outcomes[2].address == "eva@vep.si"
    tx = await written(pool, [first, good, refused, other])
    assert set(tx) == {first.delivery_id, good.delivery_id, other.delivery_id}
    assert await pool.fetchval("SELECT count(*) FROM delivery_parts") == 3  # none of eva's
    report = await AuditStore(pool).verify()
    assert report.ok and report.records == 3


async def test_a_sender_refused_at_the_commit_does_not_refuse_its_batch(
    pool: asyncpg.Pool, holder: asyncpg.Connection
) -> None:
    """R3.2: a submission by a sender no longer allowed to send (here: one who never was a
    member of eva@vep.si) is refused at the commit, alone; its batch commits."""
    writer = SubmissionWriter(pool)
    first, good, other = submission(), submission(), submission()
    refused = dataclasses.replace(submission(), sender_address="eva@vep.si")
    async with holder.transaction():
        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
        alone, batch, _ = await queue_behind(writer, pool, first, [good, refused, other])
    outcomes = await asyncio.gather(alone, *batch, return_exceptions=True)
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], SenderRefused)
    tx = await written(pool, [first, good, refused, other])
    assert set(tx) == {first.delivery_id, good.delivery_id, other.delivery_id}
    report = await AuditStore(pool).verify()
    assert report.ok and report.records == 3


async def test_without_the_audit_head_nothing_commits_even_in_a_batch(
    pool: asyncpg.Pool, holder: asyncpg.Connection
) -> None:
    """R9.1: no delivery without its audit record — also where a batch reads no result."""
    writer = SubmissionWriter(pool)
    items = [submission() for _ in range(3)]
    async with holder.transaction():
        await holder.execute("DELETE FROM audit_head")  # holds the row until it commits
        alone, batch, _ = await queue_behind(writer, pool, items[0], items[1:])
    outcomes = await asyncio.gather(alone, *batch, return_exceptions=True)
    assert all(isinstance(o, AuditHeadMissing) for o in outcomes), outcomes
    assert await written(pool, items) == {}
    assert await pool.fetchval("SELECT count(*) FROM audit_events") == 0
    with pytest.raises(AuditHeadMissing):
        await AuditStore(pool).append(datetime.now(UTC), "p1", "test", "success", {})


async def test_a_commit_that_went_unanswered_is_unknown_and_not_retried(
    pool: asyncpg.Pool, holder: asyncpg.Connection
) -> None:
    """A lost connection may come after the commit: the callers are told the outcome is
    unknown — never a refusal, which would let them delete the content of a delivery that
    may exist — and nothing is written again behind their backs."""
    writer = SubmissionWriter(pool)
    items = [submission() for _ in range(3)]
    async with holder.transaction():
        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
        alone, batch, backend = await queue_behind(writer, pool, items[0], items[1:])
        await holder.execute("SELECT pg_terminate_backend($1)", backend)
        with pytest.raises(OutcomeUnknown):
            await alone
        backend = await blocked_on_lock(pool)  # the batch, on another connection
        await holder.execute("SELECT pg_terminate_backend($1)", backend)
        for task in batch:
            with pytest.raises(OutcomeUnknown):
                await task
    assert await written(pool, items) == {}
    again = submission()
    await writer.write(again)  # the writer and the pool carry on
    assert list(await written(pool, [again])) == [again.delivery_id]


async def test_a_caller_that_goes_away_does_not_withdraw_its_submission(
    pool: asyncpg.Pool, holder: asyncpg.Connection
) -> None:
    """Once handed over it is as good as sent: the service keeps its files for it."""
    writer = SubmissionWriter(pool)
    first, leaving = submission(), submission()
    async with holder.transaction():
        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
        alone, (gone,), _ = await queue_behind(writer, pool, first, [leaving])
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
    await alone
    await until(lambda: writer.queued == 0, "the queue to drain")
    await until(lambda: written(pool, [leaving]), "the cancelled caller's submission")


def test_only_errors_reported_about_the_statement_are_definite() -> None:
    exc = asyncpg.exceptions
    for refusal in (
        exc.NotNullViolationError,
        exc.UniqueViolationError,
        exc.ForeignKeyViolationError,
        exc.QueryCanceledError,
        exc.SerializationError,
        exc.DeadlockDetectedError,
    ):
        assert definite(refusal("x")), refusal
    for unknown in (
        exc.ConnectionDoesNotExistError,
        exc.ConnectionFailureError,
        exc.AdminShutdownError,
        exc.CrashShutdownError,
        exc.InternalServerError,
    ):
        assert not definite(unknown("x")), unknown
