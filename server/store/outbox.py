"""The notification outbox (R5.4, R3.4): e-mails to send, written with the event causing them.

``enqueue`` takes the caller's connection, so the notification commits or rolls back with
the event (a delivery, a new notification address): an event never goes unannounced
because the mail server was down, and a rolled-back event is never announced.

Several server nodes run a worker each; ``claim_due`` hands a row to exactly one of them
(``FOR UPDATE SKIP LOCKED``) and leases it until ``locked_until``, after which a crashed
worker's rows become due again. ``params`` may hold the R3.4 confirmation code, a secret,
so every terminal transition (sent, given up) removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from .db import Connection


@dataclass(frozen=True)
class OutboxMessage:
    """A claimed, pending notification. ``attempts`` counts this attempt too."""

    id: int
    created_at: datetime
    to: str
    kind: str
    params: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_error: str | None

    def __repr__(self) -> str:
        # A dataclass repr would print the params (the confirmation code) and the address
        # into any log line or traceback that shows the object.
        return f"OutboxMessage(id={self.id}, kind={self.kind!r}, attempts={self.attempts})"


@dataclass(frozen=True)
class OutboxRow:
    """A row in any state, for inspection (operators, tests); ``params`` None once finished."""

    id: int
    created_at: datetime
    to: str
    kind: str
    params: dict[str, Any] | None
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_attempt_at: datetime | None
    sent_at: datetime | None
    given_up_at: datetime | None
    last_error: str | None

    def __repr__(self) -> str:
        return f"OutboxRow(id={self.id}, kind={self.kind!r}, attempts={self.attempts})"


class OutboxStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def enqueue(
        self, conn: Connection, *, to: str, kind: str, params: dict[str, Any], at: datetime
    ) -> int:
        """Queue one e-mail in the caller's transaction (R5.4); due at once. Returns its id."""
        outbox_id = await conn.fetchval(
            """INSERT INTO outbox (created_at, recipient, kind, params, next_attempt_at)
               VALUES ($1, $2, $3, $4, $1) RETURNING id""",
            at,
            to,
            kind,
            params,
        )
        assert isinstance(outbox_id, int)
        return outbox_id

    async def sent_lately(
        self, conn: Connection, to: str, kind: str, since: datetime
    ) -> tuple[int, datetime | None, datetime | None]:
        """How many ``kind`` e-mails were queued to ``to`` since ``since``, and the first
        and the last of them (an index on confirmations, migration 0015)."""
        row = await conn.fetchrow(
            """SELECT count(*) AS n, min(created_at) AS first, max(created_at) AS last
                 FROM outbox WHERE recipient = $1 AND kind = $2 AND created_at > $3""",
            to,
            kind,
            since,
        )
        assert row is not None
        return int(row["n"]), row["first"], row["last"]

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxMessage]:
        """Claim up to ``limit`` due rows for this worker until ``now + lease``.

        One statement: rows another worker is claiming right now are skipped, rows it has
        claimed carry an unexpired lease, so no row goes to two workers. The attempt is
        counted here rather than after the send, so a message that crashes the worker
        every time still reaches the attempt limit.
        """
        rows = await self._pool.fetch(
            """UPDATE outbox SET locked_until = $2, attempts = attempts + 1
                 WHERE id IN (SELECT id FROM outbox
                               WHERE sent_at IS NULL AND given_up_at IS NULL
                                 AND next_attempt_at <= $1
                                 AND (locked_until IS NULL OR locked_until <= $1)
                               ORDER BY next_attempt_at, id
                               LIMIT $3
                               FOR UPDATE SKIP LOCKED)
             RETURNING *""",
            now,
            now + lease,
            limit,
        )
        messages = [_message(r) for r in rows]
        messages.sort(key=lambda m: (m.next_attempt_at, m.id))
        return messages

    async def mark_sent(self, outbox_id: int, at: datetime) -> bool:
        """The mail server accepted it; the params (a code, perhaps) are removed."""
        return await self._finish(
            """UPDATE outbox SET sent_at = $2, last_attempt_at = $2, params = NULL,
                                  locked_until = NULL, last_error = NULL
                 WHERE id = $1 AND sent_at IS NULL AND given_up_at IS NULL""",
            outbox_id,
            at,
        )

    async def mark_failed(
        self, outbox_id: int, at: datetime, error: str, next_attempt_at: datetime
    ) -> bool:
        """A temporary failure at ``at``: release the lease, try again at ``next_attempt_at``.

        ``error`` is an error class or SMTP code, never a server's text (it may quote the
        address) and never the message.
        """
        return await self._finish(
            """UPDATE outbox SET last_attempt_at = $2, next_attempt_at = $3, last_error = $4,
                                  locked_until = NULL
                 WHERE id = $1 AND sent_at IS NULL AND given_up_at IS NULL""",
            outbox_id,
            at,
            next_attempt_at,
            error,
        )

    async def give_up(self, outbox_id: int, at: datetime, error: str) -> bool:
        """A permanent failure or too many attempts; the params are removed."""
        return await self._finish(
            """UPDATE outbox SET given_up_at = $2, last_attempt_at = $2, last_error = $3,
                                  params = NULL, locked_until = NULL
                 WHERE id = $1 AND sent_at IS NULL AND given_up_at IS NULL""",
            outbox_id,
            at,
            error,
        )

    async def get(self, outbox_id: int) -> OutboxRow | None:
        row = await self._pool.fetchrow("SELECT * FROM outbox WHERE id = $1", outbox_id)
        return _row(row) if row else None

    async def _finish(self, sql: str, *args: Any) -> bool:
        """Run one transition; False when the row was no longer pending.

        Every transition requires a pending row: a late answer of a worker whose lease ran
        out must not overwrite what another worker recorded.
        """
        status = await self._pool.execute(sql, *args)
        return bool(status == "UPDATE 1")


def _message(row: asyncpg.Record) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        created_at=row["created_at"],
        to=row["recipient"],
        kind=row["kind"],
        params=row["params"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        locked_until=row["locked_until"],
        last_error=row["last_error"],
    )


def _row(row: asyncpg.Record) -> OutboxRow:
    return OutboxRow(
        id=row["id"],
        created_at=row["created_at"],
        to=row["recipient"],
        kind=row["kind"],
        params=row["params"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        locked_until=row["locked_until"],
        last_attempt_at=row["last_attempt_at"],
        sent_at=row["sent_at"],
        given_up_at=row["given_up_at"],
        last_error=row["last_error"],
    )
