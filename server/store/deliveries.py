"""Deliveries, their parts and recipients, and the sealed evidence of each step (R5, R6).

A submission is one transaction: the delivery, its parts (already fsynced in the content
store), its recipients, its first evidence, the notifications in the outbox and the audit
record. Later steps (handover, acceptance, rejection, deemed service) each commit their
state change together with their evidence.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .audit import AuditStore
from .submission_writer import SubmissionWriter
from .submissions import NewSubmission

#: The order of a delivery's life (ETSI EN 319 522-2), for evidence issued at one instant:
#: a submission's SubmissionAcceptance and each recipient's ContentConsignment and
#: NotificationForAcceptance share their time, and were listed in the order of their
#: random identifiers — a consignment before the acceptance it follows in half the
#: listings. Listed now in the order of a delivery's life: the submission's own, then each
#: recipient's (by address), in this order. (A test holds the names to ``EventName``.)
EVENT_ORDER = (
    "SubmissionAcceptance",
    "SubmissionRejection",
    "ContentConsignment",
    "NotificationForAcceptance",
    "ConsignmentAcceptance",
    "ConsignmentRejection",
    "AcceptanceRejectionExpiry",
    "ContentHandover",
    "ContentDisposition",
)

if TYPE_CHECKING:
    from .db import Connection


@dataclass(frozen=True)
class PartRow:
    part_no: int
    name: str
    media_type: str
    size: int
    sha256: str
    locator: str
    ciphertext_size: int
    sender_signature: dict[str, Any] | None
    #: The sealed part, for a part small enough to be kept in its row (migration 0012);
    #: None for a part stored as a file, and once the content is purged (R8.1).
    inline: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RecipientRow:
    recipient_address: str
    state: str
    consigned_at: datetime
    notified_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    acceptance_method: str | None
    handed_over_at: datetime | None
    #: R8.1: when this recipient asked to delete the content from its mailbox.
    content_deleted_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryRow:
    delivery_id: uuid.UUID
    kind: str
    sender_address: str
    sender_person_id: str
    sender_fingerprint: str
    subject: str
    message: str
    reference: str | None
    submitted_at: datetime
    wrapped_key: bytes
    key_version: int
    content_purged_at: datetime | None
    sender_cert_issuer: str
    sender_cert_serial: str
    parts: tuple[PartRow, ...]
    recipients: tuple[RecipientRow, ...]
    #: R8.1: when the sender asked to delete the content from its mailbox.
    sender_content_deleted_at: datetime | None = None

    @property
    def subject_sha256(self) -> str:
        return hashlib.sha256(self.subject.encode("utf-8")).hexdigest()

    def recipient(self, address: str) -> RecipientRow | None:
        return next((r for r in self.recipients if r.recipient_address == address), None)

    def deleted_for(self, recipient: str | None) -> datetime | None:
        """When the party (a recipient mailbox, or None for the sender) asked to delete
        the content from its mailbox (R8.1), if it did."""
        if recipient is None:
            return self.sender_content_deleted_at
        row = self.recipient(recipient)
        return row.content_deleted_at if row is not None else None


@dataclass(frozen=True)
class EvidenceRow:
    evidence_id: uuid.UUID
    delivery_id: uuid.UUID
    recipient_address: str | None
    event: str
    event_time: datetime
    xml: bytes
    sha256: str
    qualified: bool


@dataclass(frozen=True)
class NewEvidence:
    evidence_id: uuid.UUID
    recipient_address: str | None
    event: str
    event_time: datetime
    xml: bytes
    sha256: str
    qualified: bool


@dataclass(frozen=True)
class ListedDelivery:
    """One line of an inbox or outbox (keyset pagination on (time, id), newest first)."""

    delivery_id: uuid.UUID
    kind: str
    sender_address: str
    subject: str
    at: datetime
    recipient_address: str | None
    state: str | None


class ReceiptUsed(Exception):
    """The vročilnica was already used for an acceptance (a replay)."""


async def insert_evidence(conn: Connection, delivery_id: uuid.UUID, ev: NewEvidence) -> None:
    await conn.execute(
        """INSERT INTO evidence (evidence_id, delivery_id, recipient_address, event,
                                 event_time, xml, sha256, qualified)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        ev.evidence_id,
        delivery_id,
        ev.recipient_address,
        ev.event,
        ev.event_time,
        ev.xml,
        ev.sha256,
        ev.qualified,
    )


class DeliveryStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit
        self._writer = SubmissionWriter(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def submit(self, submission: NewSubmission) -> None:
        """Commit a submission, grouped with those arriving meanwhile
        (:mod:`.submission_writer`); durable when this returns."""
        await self._writer.write(submission)

    async def get(self, delivery_id: uuid.UUID) -> DeliveryRow | None:
        row = await self._pool.fetchrow(
            """SELECT d.*, c.issuer AS sender_cert_issuer, c.serial AS sender_cert_serial
                 FROM deliveries d JOIN certificates c ON c.fingerprint = d.sender_fingerprint
                WHERE d.delivery_id = $1""",
            delivery_id,
        )
        if row is None:
            return None
        parts = await self._pool.fetch(
            """SELECT part_no, name, media_type, size, sha256, locator, ciphertext_size,
                      sender_signature, inline_content
                 FROM delivery_parts WHERE delivery_id = $1 ORDER BY part_no""",
            delivery_id,
        )
        recipients = await self._pool.fetch(
            """SELECT * FROM delivery_recipients WHERE delivery_id = $1
                ORDER BY recipient_address""",
            delivery_id,
        )
        return DeliveryRow(
            delivery_id=row["delivery_id"],
            kind=row["kind"],
            sender_address=row["sender_address"],
            sender_person_id=row["sender_person_id"],
            sender_fingerprint=row["sender_fingerprint"],
            subject=row["subject"],
            message=row["message"],
            reference=row["reference"],
            submitted_at=row["submitted_at"],
            wrapped_key=bytes(row["wrapped_key"]),
            key_version=row["key_version"],
            content_purged_at=row["content_purged_at"],
            sender_content_deleted_at=row["sender_content_deleted_at"],
            sender_cert_issuer=row["sender_cert_issuer"],
            sender_cert_serial=row["sender_cert_serial"],
            parts=tuple(
                PartRow(
                    part_no=p["part_no"],
                    name=p["name"],
                    media_type=p["media_type"],
                    size=p["size"],
                    sha256=p["sha256"],
                    locator=p["locator"],
                    ciphertext_size=p["ciphertext_size"],
                    sender_signature=p["sender_signature"],
                    inline=p["inline_content"],
                )
                for p in parts
            ),
            recipients=tuple(
                RecipientRow(**{k: r[k] for k in RecipientRow.__dataclass_fields__})
                for r in recipients
            ),
        )

    async def inbox(
        self,
        address: str,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        waiting_only: bool = False,
    ) -> list[ListedDelivery]:
        """``waiting_only``: the return-receipt deliveries waiting for acceptance."""
        rows = await self._pool.fetch(
            """SELECT d.delivery_id, d.kind, d.sender_address, d.subject,
                      r.consigned_at AS at, r.recipient_address, r.state
                 FROM delivery_recipients r JOIN deliveries d USING (delivery_id)
                WHERE r.recipient_address = $1
                  AND ($2::timestamptz IS NULL OR (r.consigned_at, r.delivery_id) < ($2, $3))
                  AND (NOT $5 OR (d.kind = 'return_receipt'
                                  AND r.state = 'awaiting_acceptance'))
                ORDER BY r.consigned_at DESC, r.delivery_id DESC
                LIMIT $4""",
            address,
            after[0] if after else None,
            after[1] if after else None,
            limit,
            waiting_only,
        )
        return [ListedDelivery(**dict(r)) for r in rows]

    async def outbox(
        self, address: str, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[ListedDelivery]:
        rows = await self._pool.fetch(
            """SELECT delivery_id, kind, sender_address, subject, submitted_at AS at,
                      NULL::text AS recipient_address, NULL::text AS state
                 FROM deliveries
                WHERE sender_address = $1
                  AND ($2::timestamptz IS NULL OR (submitted_at, delivery_id) < ($2, $3))
                ORDER BY submitted_at DESC, delivery_id DESC
                LIMIT $4""",
            address,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [ListedDelivery(**dict(r)) for r in rows]

    async def record_handover(
        self, delivery_id: uuid.UUID, recipient: str, at: datetime, actor: str, ev: NewEvidence
    ) -> bool:
        """R6.1 ContentHandover, once: False when an earlier download already recorded it."""
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE delivery_recipients SET handed_over_at = $3
                    WHERE delivery_id = $1 AND recipient_address = $2
                      AND handed_over_at IS NULL""",
                delivery_id,
                recipient,
                at,
            )
            if status != "UPDATE 1":
                return False
            await insert_evidence(conn, delivery_id, ev)
            await self._audit.append(
                at,
                actor,
                "delivery.handover",
                "success",
                {"delivery_id": str(delivery_id), "recipient": recipient},
                conn=conn,
            )
        return True

    async def record_decision(
        self,
        decisions: list[tuple[uuid.UUID, str, NewEvidence]],
        state: str,
        method: str,
        at: datetime,
        actor: str,
        conn: Connection | None = None,
        receipt_id: uuid.UUID | None = None,
        changed_also: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> int:
        """Accepted / rejected / deemed served, each with its evidence (R5.3, R6.1).

        Only recipients still awaiting acceptance change; returns how many did. A signed
        vročilnica is used up in the same transaction (:class:`ReceiptUsed` on a replay).
        ``changed_also`` writes what must commit with a change and only with one — the
        sender's notice of deemed service (R5.3): as a transaction of its own it was lost
        when the process stopped between the two, and the delivery, no longer due, was
        never announced."""
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                return await self.record_decision(
                    decisions, state, method, at, actor, own, receipt_id, changed_also
                )
        if receipt_id is not None:
            used = await conn.execute(
                "UPDATE receipts SET used_at = $2 WHERE receipt_id = $1 AND used_at IS NULL",
                receipt_id,
                at,
            )
            if used != "UPDATE 1":
                raise ReceiptUsed(str(receipt_id))
        changed = 0
        for delivery_id, recipient, ev in decisions:
            status = await conn.execute(
                """UPDATE delivery_recipients
                      SET state = $3, decided_at = $4, decided_by = $5, acceptance_method = $6
                    WHERE delivery_id = $1 AND recipient_address = $2
                      AND state = 'awaiting_acceptance'""",
                delivery_id,
                recipient,
                state,
                at,
                actor,
                method,
            )
            if status == "UPDATE 1":
                await insert_evidence(conn, delivery_id, ev)
                changed += 1
        if changed and changed_also is not None:
            await changed_also(conn)
        await self._audit.append(
            at,
            actor,
            f"delivery.{state}",
            "success",
            {"deliveries": [str(d) for d, _, _ in decisions], "method": method},
            conn=conn,
        )
        return changed

    async def awaiting(self, recipient: str) -> list[uuid.UUID]:
        """Return-receipt deliveries waiting in a mailbox (ZPP 141.a(6): one signature
        collects them all)."""
        rows = await self._pool.fetch(
            """SELECT delivery_id FROM delivery_recipients
                WHERE recipient_address = $1 AND state = 'awaiting_acceptance'
                ORDER BY consigned_at, delivery_id""",
            recipient,
        )
        return [r["delivery_id"] for r in rows]

    async def due_for_deemed_service(
        self, cutoff: datetime, recipient: str | None = None
    ) -> list[asyncpg.Record]:
        """Recipients notified at or before ``cutoff`` who have not decided (R5.3); only
        ``recipient``'s when given."""
        return await self._pool.fetch(
            """SELECT r.delivery_id, r.recipient_address, r.notified_at, d.sender_address
                 FROM delivery_recipients r JOIN deliveries d USING (delivery_id)
                WHERE r.state = 'awaiting_acceptance' AND r.notified_at <= $1
                  AND ($2::text IS NULL OR r.recipient_address = $2)
                ORDER BY r.notified_at""",
            cutoff,
            recipient,
        )

    async def evidence(self, delivery_id: uuid.UUID) -> list[EvidenceRow]:
        rows = await self._pool.fetch(
            """SELECT * FROM evidence WHERE delivery_id = $1
               ORDER BY event_time, recipient_address NULLS FIRST,
                        array_position($2::text[], event), evidence_id""",
            delivery_id,
            EVENT_ORDER,
        )
        return [_evidence(r) for r in rows]

    async def evidence_item(
        self, delivery_id: uuid.UUID, evidence_id: uuid.UUID
    ) -> EvidenceRow | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM evidence WHERE delivery_id = $1 AND evidence_id = $2",
            delivery_id,
            evidence_id,
        )
        return _evidence(row) if row else None

    async def insert_receipt(
        self,
        receipt_id: uuid.UUID,
        recipient: str,
        person_id: str,
        at: datetime,
        document: bytes,
        delivery_ids: list[uuid.UUID],
        salts: dict[str, str],
    ) -> None:
        await self._pool.execute(
            """INSERT INTO receipts (receipt_id, recipient_address, issued_to, issued_at,
                                     document, delivery_ids, salts)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            receipt_id,
            recipient,
            person_id,
            at,
            document,
            delivery_ids,
            salts,
        )

    async def receipt(self, receipt_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._pool.fetchrow("SELECT * FROM receipts WHERE receipt_id = $1", receipt_id)

    async def live_locators(self, candidates: set[str]) -> set[str]:
        """Which of these content files a committed row refers to (for the sweep)."""
        rows = await self._pool.fetch(
            # a purged delivery's parts refer to nothing any more (R8.1)
            """SELECT p.locator FROM delivery_parts p JOIN deliveries d USING (delivery_id)
                WHERE p.locator = ANY($1::text[]) AND d.content_purged_at IS NULL""",
            list(candidates),
        )
        return {r["locator"] for r in rows}


def _evidence(row: asyncpg.Record) -> EvidenceRow:
    return EvidenceRow(
        evidence_id=row["evidence_id"],
        delivery_id=row["delivery_id"],
        recipient_address=row["recipient_address"],
        event=row["event"],
        event_time=row["event_time"],
        xml=bytes(row["xml"]),
        sha256=row["sha256"],
        qualified=row["qualified"],
    )
