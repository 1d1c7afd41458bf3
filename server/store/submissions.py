"""A submission written in one statement (R5.1, R5.4, R5.6, R6.1, R9.1).

One statement on a connection outside a transaction is its own transaction: the delivery,
its parts, its recipients, its first evidence, the notification e-mails and the audit
record commit together, and the audit chain's row lock (:func:`.audit.append_ctes`) is
held only while PostgreSQL finishes the statement and flushes the commit — never across a
round trip to the application, which is what capped throughput when the same rows took a
transaction of ten statements. Under load several such statements share one transaction
(:mod:`.submission_writer`); the lock is then held until that transaction's one commit,
still without a round trip to the application in between.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from .audit import AuditHeadMissing, append_ctes, canonical_head, head_missing

if TYPE_CHECKING:
    from .db import Connection
    from .deliveries import NewEvidence, PartRow

#: The audit action of a submission (R9.1).
SUBMIT = "delivery.submit"
_AUDIT = append_ctes("$9", "$4", f"'{SUBMIT}'", "'success'", "$31", "$32")
#: The submission in one statement (see :func:`insert_submission`). The recipients' array
#: is read through ``(SELECT $20::text[])`` where it decides index lookups: a bare ``$20``
#: lets a custom plan see the actual addresses while the generic plan assumes ten, so on a
#: database with many mailboxes the generic plan always looked costlier and PostgreSQL
#: planned the statement anew on every call (~0.4 ms of CPU each; issue 4 benchmark).
#: Behind the sub-select both assume ten, and the cached generic plan is used.
INSERT_SUBMISSION = f"""WITH delivery AS (
                   INSERT INTO deliveries (delivery_id, kind, sender_address, sender_person_id,
                       sender_fingerprint, subject, message, reference, submitted_at,
                       wrapped_key, key_version)
                   SELECT $1, $2, $3,
                          (SELECT ms.person_id
                             FROM memberships ms JOIN mailboxes m ON m.address = ms.address
                            WHERE ms.address = $3 AND ms.person_id = $4
                              AND m.state = 'active'
                              AND (ms.role = 'custodian' OR 'send' = ANY(ms.permissions))),
                          $5, $6, $7, $8, $9, $10, $11),
               parts AS (
                   INSERT INTO delivery_parts (delivery_id, part_no, name, media_type, size,
                       sha256, locator, ciphertext_size, sender_signature, inline_content)
                   SELECT $1, p.* FROM unnest($12::integer[], $13::text[], $14::text[],
                       $15::bigint[], $16::text[], $17::text[], $18::bigint[], $19::jsonb[],
                       $33::bytea[]) p),
               recipients AS (
                   INSERT INTO delivery_recipients (delivery_id, recipient_address, state,
                       consigned_at, notified_at)
                   SELECT $1, m.address, $21, $9, $22
                     FROM unnest((SELECT $20::text[])) a(address)
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
                    WHERE n.address = ANY((SELECT $20::text[])::text[])
                      AND n.confirmed_at IS NOT NULL
                   RETURNING id),
               {_AUDIT}
               SELECT (SELECT count(*) FROM recipients) AS consigned,
                      (SELECT count(*) FROM notify) AS queued"""  # noqa: S608 (no values)


class SenderRefused(Exception):
    """The sender lost the right to send while the delivery was uploaded: removed, the
    ``send`` permission withdrawn, or the mailbox no longer active (R3.2: removal takes
    effect at once; R5.6)."""


class RecipientInactive(Exception):
    """A recipient's mailbox stopped being active before the submission committed (R5.6)."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.address = address


@dataclass(frozen=True)
class NewSubmission:
    """Everything one submission writes (see :func:`insert_submission`)."""

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
    parts: list[PartRow]
    recipients: list[str]
    awaiting_acceptance: bool
    evidence: list[NewEvidence]
    notify_kind: str

    def arguments(self) -> tuple[object, ...]:
        """The statement's parameters, $1 to $33."""
        parts, evidence = self.parts, self.evidence
        details = {
            "delivery_id": str(self.delivery_id),
            "kind": self.kind,
            "from": self.sender_address,
            "to": self.recipients,
            "parts": len(parts),
        }
        return (
            self.delivery_id,
            self.kind,
            self.sender_address,
            self.sender_person_id,
            self.sender_fingerprint,
            self.subject,
            self.message,
            self.reference,
            self.submitted_at,
            self.wrapped_key,
            self.key_version,
            [p.part_no for p in parts],
            [p.name for p in parts],
            [p.media_type for p in parts],
            [p.size for p in parts],
            [p.sha256 for p in parts],
            [p.locator for p in parts],
            [p.ciphertext_size for p in parts],
            [p.sender_signature for p in parts],
            self.recipients,
            "awaiting_acceptance" if self.awaiting_acceptance else "consigned",
            self.submitted_at if self.awaiting_acceptance else None,
            [ev.evidence_id for ev in evidence],
            [ev.recipient_address for ev in evidence],
            [ev.event for ev in evidence],
            [ev.event_time for ev in evidence],
            [ev.xml for ev in evidence],
            [ev.sha256 for ev in evidence],
            [ev.qualified for ev in evidence],
            self.notify_kind,
            details,
            canonical_head(self.submitted_at, self.sender_person_id, SUBMIT, "success", details),
            [p.inline for p in parts],
        )


async def insert_submission(conn: Connection, submission: NewSubmission) -> int:
    """Write the whole submission in one statement — on a connection outside a
    transaction, its own transaction, committed when it returns: the delivery, its
    parts, its recipients, its evidence, a ``notify_kind`` e-mail to each confirmed
    notification address of each recipient (R5.4) and the audit record (R9.1).

    Each recipient's mailbox must still be active (R5.6): an inactive one would leave
    ``recipient_address`` NULL, which NOT NULL refuses, and :class:`RecipientInactive`
    is raised with nothing written. The sender is checked again the same way, since an
    upload may take minutes: their membership must still allow sending from a mailbox
    still active, or ``sender_person_id`` is NULL and :class:`SenderRefused` is raised
    (R3.2, R5.6); so is :class:`.audit.AuditHeadMissing`. One statement
    also means the audit chain's lock is held only while PostgreSQL finishes the
    statement and flushes the commit, never across a round trip to us. Returns the number
    of e-mails queued. :class:`.submission_writer.SubmissionWriter` runs the same
    statement for several submissions in one transaction."""
    try:
        row = await conn.fetchrow(INSERT_SUBMISSION, *submission.arguments())
    except asyncpg.NotNullViolationError as exc:
        raise await refusal(conn, submission, exc) from None
    assert row is not None
    assert row["consigned"] == len(submission.recipients)
    return int(row["queued"])


async def refusal(
    conn: Connection, submission: NewSubmission, exc: asyncpg.NotNullViolationError
) -> Exception:
    """What a NOT NULL refusal of the statement means (see :func:`insert_submission`)."""
    if head_missing(exc):
        return AuditHeadMissing()
    if exc.table_name == "deliveries" and exc.column_name == "sender_person_id":
        return SenderRefused()
    if exc.table_name == "delivery_recipients" and exc.column_name == "recipient_address":
        return RecipientInactive(await _first_inactive(conn, submission.recipients))
    return exc


async def _first_inactive(conn: Connection, recipients: list[str]) -> str:
    active = {
        r["address"]
        for r in await conn.fetch(
            "SELECT address FROM mailboxes WHERE address = ANY($1) AND state = 'active'",
            recipients,
        )
    }
    return next((a for a in recipients if a not in active), recipients[0])
