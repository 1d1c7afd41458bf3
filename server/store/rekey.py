"""Rows a master-key rotation rewrites (R5.5): each live delivery's wrapped data key, and
a message still kept in clear from before messages were sealed.

Batches in key order (a keyset, so a batch never reads the rows done before it), each one
transaction that locks its rows and appends its audit record. It waits for a row another
transaction holds rather than skip it: a row left under the retired key would not open
once that key is destroyed. The lock is ``FOR NO KEY UPDATE`` (no key column changes), so
evidence inserted meanwhile — its foreign key takes a key-share lock on the row — neither
waits for a batch nor deadlocks with an acceptance locking several deliveries. Disposed-of
rows have no key left and are not read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .audit import AuditStore


@dataclass(frozen=True)
class KeyedRow:
    """A delivery's wrapped data key and message: as read, and as a batch rewrites it."""

    delivery_id: uuid.UUID
    key_version: int
    wrapped_key: bytes
    message: str


@dataclass(frozen=True)
class Batch:
    seen: int
    last: uuid.UUID | None


class RekeyStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit

    async def batch(
        self,
        after: uuid.UUID | None,
        limit: int,
        change: Callable[[Sequence[KeyedRow]], Sequence[KeyedRow]],
        at: datetime,
        actor: str,
    ) -> Batch:
        """The next ``limit`` live deliveries after ``after``: ``change`` says which to
        rewrite (it runs inside the transaction, on the locked rows)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT delivery_id, key_version, wrapped_key, message FROM deliveries
                    WHERE content_purged_at IS NULL
                      AND ($1::uuid IS NULL OR delivery_id > $1)
                    ORDER BY delivery_id LIMIT $2
                    FOR NO KEY UPDATE""",
                after,
                limit,
            )
            found = [KeyedRow(**dict(r)) for r in rows]
            changed = change(found)
            if changed:
                await conn.executemany(
                    """UPDATE deliveries SET key_version = $2, wrapped_key = $3, message = $4
                        WHERE delivery_id = $1 AND content_purged_at IS NULL""",
                    [(c.delivery_id, c.key_version, c.wrapped_key, c.message) for c in changed],
                )
                await self._audit.append(
                    at,
                    actor,
                    "content.rekeyed",
                    "success",
                    {
                        "deliveries": [str(c.delivery_id) for c in changed],
                        "key_version": changed[0].key_version,
                    },
                    conn=conn,
                )
        return Batch(len(found), found[-1].delivery_id if found else None)

    async def not_under(self, version: int) -> list[uuid.UUID]:
        """Live deliveries whose key is under another master key version: after a run,
        ones that did not open, and ones a node not yet on the new key wrote meanwhile."""
        rows = await self._pool.fetch(
            """SELECT delivery_id FROM deliveries
                WHERE content_purged_at IS NULL AND key_version <> $1
                ORDER BY delivery_id""",
            version,
        )
        return [r["delivery_id"] for r in rows]

    async def finished(self, at: datetime, actor: str, details: dict[str, object]) -> None:
        """The run's own record (R9.1): also a run that changed nothing read every key."""
        await self._audit.append(at, actor, "content.rekey_run", "success", details)
