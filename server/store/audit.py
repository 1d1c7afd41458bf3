"""The audit trail (R9.1): append-only rows, each chained to the previous by SHA-256.

``hash = SHA-256(prev_hash || canonical JSON of the record)``; the first record chains to
32 zero bytes. Appends serialise on the row lock of ``audit_head`` (migration 0009), so the
chain has no forks even with several server nodes. An append is one statement: it updates
the head (PostgreSQL finishes our canonical JSON with the next seq and computes the hash)
and inserts the record. The row lock is held until the caller's COMMIT, so an append should
be the last thing a transaction does before it commits. Sealing each record with the provider's
seal comes with the evidence issue; the chain already detects a changed, removed or
inserted record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .text import recordable

if TYPE_CHECKING:
    from .db import Connection

GENESIS = bytes(32)


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    occurred_at: datetime
    actor: str | None
    action: str
    outcome: str
    details: dict[str, Any]
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class ChainReport:
    """Result of :func:`check_chain`: how many records were checked and the first broken
    one; ``head`` is the hash of the last intact record (``GENESIS`` before the first)."""

    records: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    head: bytes = GENESIS


def canonical_head(
    occurred_at: datetime,
    actor: str | None,
    action: str,
    outcome: str,
    details: dict[str, Any],
) -> str:
    """The canonical JSON of a record up to its ``seq`` value: "seq" sorts last, so the
    whole is ``head + str(seq) + "}"`` (which lets PostgreSQL finish it)."""
    canonical = json.dumps(
        {
            "seq": 0,
            # as PostgreSQL gives it back to the verifier: UTC (a +01:00 time would not match)
            "occurred_at": occurred_at.astimezone(UTC).isoformat(),
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert canonical.endswith(_SEQ_TAIL)
    return canonical[: -len(_SEQ_TAIL)] + '"seq":'


_SEQ_TAIL = '"seq":0}'


def record_hash(
    prev_hash: bytes,
    seq: int,
    occurred_at: datetime,
    actor: str | None,
    action: str,
    outcome: str,
    details: dict[str, Any],
) -> bytes:
    canonical = canonical_head(occurred_at, actor, action, outcome, details) + f"{seq}}}"
    return hashlib.sha256(prev_hash + canonical.encode("utf-8")).digest()


def append_ctes(at: str, actor: str, action: str, outcome: str, details: str, head: str) -> str:
    """An append as two CTEs (``audit_head_next``, ``audit_record``, which returns seq,
    prev_hash and hash) for a caller's statement; the arguments are SQL expressions
    (parameters) for the record's fields and its :func:`canonical_head`.

    The UPDATE waits for the row lock of a concurrent append, then continues from the head
    that append committed (READ COMMITTED re-reads an updated row): no fork. The lock is
    held until the statement's transaction commits.

    Without the head row the record is still inserted, with a NULL ``seq``, which NOT NULL
    refuses: the whole statement fails (:func:`head_missing`) rather than commit the
    caller's rows unaudited — also where no one reads the statement's result (a batch of
    submissions, :mod:`.submission_writer`).
    """
    return f"""audit_head_next AS (
                   UPDATE audit_head
                      SET seq = seq + 1,
                          prev_hash = hash,
                          hash = sha256(hash || convert_to({head} || (seq + 1)::text || '}}',
                                                           'UTF8'))
                   RETURNING seq, prev_hash, hash),
               audit_record AS (
                   INSERT INTO audit_events
                       (seq, occurred_at, actor, action, outcome, details, prev_hash, hash)
                   SELECT h.seq, {at}, {actor}, {action}, {outcome}, {details}, h.prev_hash,
                          h.hash
                     FROM (VALUES (true)) AS one(row) LEFT JOIN audit_head_next h ON true
                   RETURNING seq, prev_hash, hash)"""  # noqa: S608 (placeholders, fixed literals)


class AuditHeadMissing(RuntimeError):
    """The audit chain's head row is gone (migration 0009): nothing can be appended."""

    def __init__(self) -> None:
        super().__init__("the audit chain has no head row (migration 0009)")


def head_missing(exc: asyncpg.PostgresError) -> bool:
    """Whether ``exc`` is :func:`append_ctes` refusing a record without a head row."""
    return (
        isinstance(exc, asyncpg.NotNullViolationError)
        and exc.table_name == "audit_events"
        and exc.column_name == "seq"
    )


def check_chain(
    events: Iterable[AuditEvent], after: ChainReport = ChainReport(0, True)
) -> ChainReport:
    """Recompute the chain over ``events`` (in ``seq`` order, from record 1): the first
    record missing, whose ``prev_hash`` is not the previous record's hash, or whose hash is
    not of its fields. ``after`` is the report of the records before ``events``, so a long
    chain is checked in batches. Pure: the database (:meth:`AuditStore.verify`) and an
    exported ``audit.jsonl`` (:mod:`server.export.verify`) both feed it."""
    if not after.ok:
        return after
    prev, count = after.head, after.records
    for event in events:
        # first, as the exported chain's check always did: a record that cannot be hashed
        # (ValueError, TypeError) is unreadable, whatever else is wrong with it
        digest = record_hash(
            prev,
            event.seq,
            event.occurred_at,
            event.actor,
            event.action,
            event.outcome,
            event.details,
        )
        if event.seq != count + 1:
            return ChainReport(count, False, count + 1, "record missing", prev)
        if event.prev_hash != prev:
            return ChainReport(count, False, event.seq, "prev_hash does not match", prev)
        if digest != event.hash:
            return ChainReport(count, False, event.seq, "record changed", prev)
        prev, count = event.hash, count + 1
    return ChainReport(count, True, head=prev)


_APPEND = (
    f"WITH {append_ctes('$1', '$2', '$3', '$4', '$5', '$6')} "  # noqa: S608 (placeholders)
    "SELECT seq, prev_hash, hash FROM audit_record"
)


class AuditStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(
        self,
        occurred_at: datetime,
        actor: str | None,
        action: str,
        outcome: str,
        details: dict[str, Any],
        conn: Connection | None = None,
    ) -> AuditEvent:
        """Append one record; pass ``conn`` to make it part of the caller's transaction.
        Strings are kept as :func:`recordable` makes them."""
        actor = recordable(actor)
        details = recordable(details)
        if conn is not None:
            return await self._append(conn, occurred_at, actor, action, outcome, details)
        async with self._pool.acquire() as own, own.transaction():
            return await self._append(own, occurred_at, actor, action, outcome, details)

    async def _append(
        self,
        conn: Connection,
        occurred_at: datetime,
        actor: str | None,
        action: str,
        outcome: str,
        details: dict[str, Any],
    ) -> AuditEvent:
        try:
            row = await conn.fetchrow(
                _APPEND,
                occurred_at,
                actor,
                action,
                outcome,
                details,
                canonical_head(occurred_at, actor, action, outcome, details),
            )
        except asyncpg.NotNullViolationError as exc:
            if head_missing(exc):
                raise AuditHeadMissing from None
            raise
        assert row is not None
        return AuditEvent(
            row["seq"],
            occurred_at,
            actor,
            action,
            outcome,
            details,
            bytes(row["prev_hash"]),
            bytes(row["hash"]),
        )

    async def recent(self, limit: int = 50) -> list[AuditEvent]:
        rows = await self._pool.fetch(
            "SELECT * FROM audit_events ORDER BY seq DESC LIMIT $1", limit
        )
        return [_event(r) for r in rows]

    async def verify(self, batch: int = 5000) -> ChainReport:
        """Walk the whole chain in order, ``batch`` rows at a time, with :func:`check_chain`,
        and hold its end to the head row (migration 0009), in one snapshot.

        Found in review: the chain alone cannot show that its newest records were cut off
        — what is left is a valid chain. The head row names the last record an append
        wrote; a chain that ends before it is missing its newest records. (Whoever can
        rewrite the head row too is caught only back to the last seal, ``audit-seal``.)"""
        report = ChainReport(0, True)
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            cursor = await conn.cursor("SELECT * FROM audit_events ORDER BY seq")
            while report.ok and (rows := await cursor.fetch(batch)):
                report = check_chain((_event(row) for row in rows), after=report)
            head = await conn.fetchrow("SELECT seq, hash FROM audit_head")
        if report.ok and (
            head is None or head["seq"] != report.records or bytes(head["hash"]) != report.head
        ):
            return ChainReport(
                report.records, False, report.records + 1, "record missing", report.head
            )
        return report


def _event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(
        seq=row["seq"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        action=row["action"],
        outcome=row["outcome"],
        details=row["details"],
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )
