"""Content disposal in SQL (R8.1): which deliveries are past retention, and the purge.

A purge claims its delivery with ``FOR UPDATE SKIP LOCKED`` and, in the same transaction,
stores the sealed disposition records, marks the content purged and writes the audit
record; the files go after the commit (a crash in between leaves files no live row refers
to, which the content sweep removes). So a delivery is disposed of once, whichever node or
run gets to it, and a run killed half-way resumes with the deliveries not yet committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from .audit import AuditStore
from .deliveries import NewEvidence, insert_evidence

if TYPE_CHECKING:
    from .db import Connection

#: When a recipient "received" a delivery (R8.1 counts from it): a registered delivery on
#: consignment into the mailbox (R5.4: at once); a return-receipt delivery on its decision
#: (acceptance, refusal or deemed service, R5.3) — before that it is not received at all.


class ContentGone(Exception):
    """The delivery's content is disposed of already (R8.1)."""


class AlreadyDeleted(Exception):
    """This party asked to delete the content before (R8.1)."""


class RetentionStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self.pool = pool
        self._audit = audit

    async def due(self, received_before: datetime, limit: int = 1000) -> list[uuid.UUID]:
        """Deliveries with content whose every recipient received them at or before the
        cutoff, oldest first."""
        rows = await self.pool.fetch(
            """SELECT d.delivery_id FROM deliveries d
                WHERE d.content_purged_at IS NULL
                  AND NOT EXISTS (
                      SELECT 1 FROM delivery_recipients r
                       WHERE r.delivery_id = d.delivery_id
                         AND coalesce(CASE WHEN d.kind = 'registered' THEN r.consigned_at
                                           ELSE r.decided_at END, 'infinity') > $1)
                 ORDER BY d.submitted_at LIMIT $2""",
            received_before,
            limit,
        )
        return [r["delivery_id"] for r in rows]

    async def purge(
        self,
        delivery_id: uuid.UUID,
        at: datetime,
        reason: str,
        actor: str,
        records: Callable[[], Awaitable[list[NewEvidence]]],
    ) -> list[str] | None:
        """Dispose of the content once: the locators of the files to delete (parts kept in
        their rows are cleared here), or None when another run has it or it is gone
        already. ``records`` seals the disposition evidence, called only once the delivery
        is claimed."""
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                """SELECT delivery_id FROM deliveries
                    WHERE delivery_id = $1 AND content_purged_at IS NULL
                    FOR UPDATE SKIP LOCKED""",
                delivery_id,
            )
            if claimed is None:
                return None
            return await self._purge_claimed(conn, delivery_id, at, reason, actor, records)

    async def delete_for_party(
        self,
        delivery_id: uuid.UUID,
        party: str,
        as_sender: bool,
        at: datetime,
        actor: str,
        records: Callable[[], Awaitable[list[NewEvidence]]],
    ) -> list[str] | None:
        """R8.1: ``party``'s explicit request to delete the content from its mailbox, with
        its audit record; when it was the last party to ask, the content is disposed of in
        the same transaction (the locators of the files to delete are returned, else None).

        Raises :class:`ContentGone` when the content is purged already and
        :class:`AlreadyDeleted` when this party asked before. The delivery row is locked
        (``FOR UPDATE``, not skipped), so two parties' last requests cannot both see the
        other still waiting."""
        async with self.pool.acquire() as conn, conn.transaction():
            purged = await conn.fetchrow(
                """SELECT content_purged_at FROM deliveries WHERE delivery_id = $1
                      FOR UPDATE""",
                delivery_id,
            )
            if purged is None or purged["content_purged_at"] is not None:
                raise ContentGone()
            if as_sender:
                marked = await conn.fetchval(
                    """UPDATE deliveries SET sender_content_deleted_at = $2
                        WHERE delivery_id = $1 AND sender_content_deleted_at IS NULL
                    RETURNING 1""",
                    delivery_id,
                    at,
                )
            else:
                marked = await conn.fetchval(
                    """UPDATE delivery_recipients SET content_deleted_at = $3
                        WHERE delivery_id = $1 AND recipient_address = $2
                          AND content_deleted_at IS NULL
                    RETURNING 1""",
                    delivery_id,
                    party,
                    at,
                )
            if marked is None:
                raise AlreadyDeleted()
            await self._audit.append(
                at,
                actor,
                "delivery.content_deleted",
                "success",
                {"delivery_id": str(delivery_id), "mailbox": party},
                conn=conn,
            )
            keeping = await conn.fetchval(
                """SELECT (SELECT count(*) FROM deliveries
                            WHERE delivery_id = $1 AND sender_content_deleted_at IS NULL)
                        + (SELECT count(*) FROM delivery_recipients
                            WHERE delivery_id = $1 AND content_deleted_at IS NULL)""",
                delivery_id,
            )
            if keeping:
                return None
            return await self._purge_claimed(
                conn, delivery_id, at, "subscriber_request", actor, records
            )

    async def _purge_claimed(
        self,
        conn: Connection,
        delivery_id: uuid.UUID,
        at: datetime,
        reason: str,
        actor: str,
        records: Callable[[], Awaitable[list[NewEvidence]]],
    ) -> list[str]:
        """The disposal of a delivery this transaction holds locked."""
        for record in await records():
            await insert_evidence(conn, delivery_id, record)
        # The wrapped data key goes too (crypto-erasure, R5.5/R8.1): a copy of the
        # ciphertext kept elsewhere — a file system snapshot, an old tuple, a backup — no
        # longer opens with the master key and this row. And the message: it is content
        # (found in review: it outlived the purge and was still shown to both parties).
        await conn.execute(
            """UPDATE deliveries SET content_purged_at = $2, content_purge_reason = $3,
                                     content_purge_requested_by = $4, wrapped_key = '\\x',
                                     message = ''
                WHERE delivery_id = $1""",
            delivery_id,
            at,
            reason,
            None if actor.startswith("system:") else actor,
        )
        await self._audit.append(
            at,
            actor,
            "delivery.content_purged",
            "success",
            {"delivery_id": str(delivery_id), "reason": reason},
            conn=conn,
        )
        files = await conn.fetch(
            """SELECT locator FROM delivery_parts
                WHERE delivery_id = $1 AND inline_content IS NULL""",
            delivery_id,
        )
        # Parts kept in their row (migration 0012) go with this transaction; the files
        # are the caller's to delete.
        await conn.execute(
            """UPDATE delivery_parts SET inline_content = NULL
                WHERE delivery_id = $1 AND inline_content IS NOT NULL""",
            delivery_id,
        )
        return [r["locator"] for r in files]
