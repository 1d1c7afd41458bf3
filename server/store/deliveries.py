"""Deliveries, their parts and recipients, and the sealed evidence of each step (R5, R6).

A submission is one transaction: the delivery, its parts (already fsynced in the content
store), its recipients, its first evidence, the notifications in the outbox and the audit
record. Later steps (handover, acceptance, rejection, deemed service) each commit their
state change together with their evidence.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .audit import AuditStore, append_ctes, canonical_head

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

    @property
    def subject_sha256(self) -> str:
        return hashlib.sha256(self.subject.encode("utf-8")).hexdigest()

    def recipient(self, address: str) -> RecipientRow | None:
        return next((r for r in self.recipients if r.recipient_address == address), None)


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


#: The audit action of a submission (R9.1).
SUBMIT = "delivery.submit"
_AUDIT = append_ctes("$9", "$4", f"'{SUBMIT}'", "'success'", "$31", "$32")
#: The submission in one statement (see :meth:`DeliveryStore.insert_submission`).
_INSERT_SUBMISSION = f"""WITH delivery AS (
                   INSERT INTO deliveries (delivery_id, kind, sender_address, sender_person_id,
                       sender_fingerprint, subject, message, reference, submitted_at,
                       wrapped_key, key_version)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)),
               parts AS (
                   INSERT INTO delivery_parts (delivery_id, part_no, name, media_type, size,
                       sha256, locator, ciphertext_size, sender_signature)
                   SELECT $1, p.* FROM unnest($12::integer[], $13::text[], $14::text[],
                       $15::bigint[], $16::text[], $17::text[], $18::bigint[], $19::jsonb[]) p),
               recipients AS (
                   INSERT INTO delivery_recipients (delivery_id, recipient_address, state,
                       consigned_at, notified_at)
                   SELECT $1, m.address, $21, $9, $22
                     FROM unnest($20::text[]) a(address)
                     LEFT JOIN mailboxes m ON m.address = a.address AND m.state = 'active'
                   RETURNING recipient_address),
               evidence AS (
                   INSERT INTO evidence (evidence_id, delivery_id, recipient_address, event,
                       event_time, xml, sha256, qualified)
                   SELECT e.id, $1, e.recipient, e.event, e.at, e.xml, e.sha256, e.qualified
                     FROM unnest($23::uuid[], $24::text[], $25::text[], $26::timestamptz[],
                       $27::bytea[], $28::text[], $29::boolean[])
                       e(id, recipient, event, at, xml, sha256, qualified)),
               notify AS (
                   INSERT INTO outbox (created_at, recipient, kind, params, next_attempt_at)
                   SELECT $9, n.email, $30, jsonb_build_object('mailbox', n.address), $9
                     FROM notification_addresses n
                    WHERE n.address = ANY($20::text[]) AND n.confirmed_at IS NOT NULL
                   RETURNING id),
               {_AUDIT}
               SELECT (SELECT count(*) FROM recipients) AS consigned,
                      (SELECT count(*) FROM notify) AS queued,
                      (SELECT seq FROM audit_record) AS audit_seq"""  # noqa: S608 (no values)


class RecipientInactive(Exception):
    """A recipient's mailbox stopped being active before the submission committed (R5.6)."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address


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

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def insert_submission(
        self,
        conn: Connection,
        *,
        delivery_id: uuid.UUID,
        kind: str,
        sender_address: str,
        sender_person_id: str,
        sender_fingerprint: str,
        subject: str,
        message: str,
        reference: str | None,
        submitted_at: datetime,
        wrapped_key: bytes,
        key_version: int,
        parts: list[PartRow],
        recipients: list[str],
        awaiting_acceptance: bool,
        evidence: list[NewEvidence],
        notify_kind: str,
    ) -> int:
        """Write the whole submission in one statement — on a connection outside a
        transaction, its own transaction, committed when it returns: the delivery, its
        parts, its recipients, its evidence, a ``notify_kind`` e-mail to each confirmed
        notification address of each recipient (R5.4) and the audit record (R9.1).

        Each recipient's mailbox must still be active (R5.6): an inactive one would leave
        ``recipient_address`` NULL, which NOT NULL refuses, and :class:`RecipientInactive`
        is raised with nothing written. One statement also means the audit chain's lock is
        held only while PostgreSQL finishes the statement and flushes the commit, never
        across a round trip to us. Returns the number of e-mails queued."""
        state = "awaiting_acceptance" if awaiting_acceptance else "consigned"
        notified = submitted_at if awaiting_acceptance else None
        details = {
            "delivery_id": str(delivery_id),
            "kind": kind,
            "from": sender_address,
            "to": recipients,
            "parts": len(parts),
        }
        head = canonical_head(submitted_at, sender_person_id, SUBMIT, "success", details)
        try:
            row = await conn.fetchrow(
                _INSERT_SUBMISSION,
                delivery_id,
                kind,
                sender_address,
                sender_person_id,
                sender_fingerprint,
                subject,
                message,
                reference,
                submitted_at,
                wrapped_key,
                key_version,
                [p.part_no for p in parts],
                [p.name for p in parts],
                [p.media_type for p in parts],
                [p.size for p in parts],
                [p.sha256 for p in parts],
                [p.locator for p in parts],
                [p.ciphertext_size for p in parts],
                [p.sender_signature for p in parts],
                recipients,
                state,
                notified,
                [ev.evidence_id for ev in evidence],
                [ev.recipient_address for ev in evidence],
                [ev.event for ev in evidence],
                [ev.event_time for ev in evidence],
                [ev.xml for ev in evidence],
                [ev.sha256 for ev in evidence],
                [ev.qualified for ev in evidence],
                notify_kind,
                details,
                head,
            )
        except asyncpg.NotNullViolationError as exc:
            if exc.table_name != "delivery_recipients" or exc.column_name != "recipient_address":
                raise
            raise RecipientInactive(await self._first_inactive(conn, recipients)) from None
        assert row is not None
        if row["audit_seq"] is None:
            raise RuntimeError("the audit chain has no head row (migration 0006)")
        assert row["consigned"] == len(recipients)
        return int(row["queued"])

    @staticmethod
    async def _first_inactive(conn: Connection, recipients: list[str]) -> str:
        active = {
            r["address"]
            for r in await conn.fetch(
                "SELECT address FROM mailboxes WHERE address = ANY($1) AND state = 'active'",
                recipients,
            )
        }
        return next((a for a in recipients if a not in active), recipients[0])

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
            "SELECT * FROM delivery_parts WHERE delivery_id = $1 ORDER BY part_no", delivery_id
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
                )
                for p in parts
            ),
            recipients=tuple(
                RecipientRow(**{k: r[k] for k in RecipientRow.__dataclass_fields__})
                for r in recipients
            ),
        )

    async def inbox(
        self, address: str, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[ListedDelivery]:
        rows = await self._pool.fetch(
            """SELECT d.delivery_id, d.kind, d.sender_address, d.subject,
                      r.consigned_at AS at, r.recipient_address, r.state
                 FROM delivery_recipients r JOIN deliveries d USING (delivery_id)
                WHERE r.recipient_address = $1
                  AND ($2::timestamptz IS NULL OR (r.consigned_at, r.delivery_id) < ($2, $3))
                ORDER BY r.consigned_at DESC, r.delivery_id DESC
                LIMIT $4""",
            address,
            after[0] if after else None,
            after[1] if after else None,
            limit,
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
    ) -> int:
        """Accepted / rejected / deemed served, each with its evidence (R5.3, R6.1).

        Only recipients still awaiting acceptance change; returns how many did. A signed
        vročilnica is used up in the same transaction (:class:`ReceiptUsed` on a replay)."""
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                return await self.record_decision(
                    decisions, state, method, at, actor, own, receipt_id
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

    async def due_for_deemed_service(self, cutoff: datetime) -> list[asyncpg.Record]:
        """Recipients notified at or before ``cutoff`` who have not decided (R5.3)."""
        return await self._pool.fetch(
            """SELECT r.delivery_id, r.recipient_address, d.sender_address
                 FROM delivery_recipients r JOIN deliveries d USING (delivery_id)
                WHERE r.state = 'awaiting_acceptance' AND r.notified_at <= $1
                ORDER BY r.notified_at""",
            cutoff,
        )

    async def evidence(self, delivery_id: uuid.UUID) -> list[EvidenceRow]:
        rows = await self._pool.fetch(
            "SELECT * FROM evidence WHERE delivery_id = $1 ORDER BY event_time, evidence_id",
            delivery_id,
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
            "SELECT locator FROM delivery_parts WHERE locator = ANY($1::text[])",
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
