"""Registrations, subscribers and signed contracts (R2.1–R2.5).

Opening a mailbox is one transaction: subscriber, contract, mailbox, its first state, the
custodian's membership with the signing person's certificate enrolled, and the audit
record — all or nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .audit import AuditStore

#: Advisory lock namespace for address reservations (second key: hashtext(local part)).
ADDRESS_LOCK = 0x5645_5003
#: Advisory lock namespace of one person's pending registrations (the :data:`MAX_PENDING` cap).
HOLDS_LOCK = 0x5645_500A
ALL_PERMISSIONS = ["read", "send", "accept", "manage"]


@dataclass(frozen=True)
class Registration:
    registration_id: uuid.UUID
    person_id: str
    cert_fingerprint: str
    kind: str
    local_part: str
    mailbox_kind: str
    details: dict[str, Any]
    admin_password_hash: str
    terms_version: str
    contract_pdf: bytes
    contract_sha256: bytes
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    mailbox_address: str | None


@dataclass(frozen=True)
class Standing:
    """R2.5: why an earlier subscriber with this tax number may not contract again."""

    unpaid_debt_cents: int
    terminated_for_breach: bool


@dataclass(frozen=True)
class OpenedMailbox:
    address: str
    state: str
    subscriber_id: uuid.UUID
    contract_id: uuid.UUID


class AddressTaken(Exception):
    """The local part is used by a mailbox or held by another pending registration."""


class TooManyPending(Exception):
    """The person holds :data:`MAX_PENDING` other addresses in pending registrations."""


#: Addresses one person may hold at once in registrations not yet completed: each start
#: holds its address for a day, so without a cap one person could hold any number.
MAX_PENDING = 3


class RegistrationStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self._pool = pool
        self._audit = audit

    async def standing(
        self, kind: str, tax_number: str | None, person_id: str | None, now: datetime
    ) -> Standing:
        """R2.5: the debts and breaches of earlier contracts of the same subscriber — a legal
        entity by its tax number (the register vouched for it), a natural person by the
        identity of their certificate (R1.4) or a tax number the certificate states; a
        number a person merely typed proves nothing (found in review: typing another's
        valid number dodged the refusal, and left the debt under that number).

        A debt is what closure recorded (``unpaid_debt_cents``, R8.3) and what is overdue
        now on invoices not yet closed for (found in review: until day 30 after the due
        date an unpaid subscriber could open more mailboxes)."""
        row = await self._pool.fetchrow(
            """WITH same AS (
                   SELECT subscriber_id, unpaid_debt_cents, termination_reason
                     FROM subscribers
                    WHERE kind = $1 AND (tax_number = $2 OR person_id = $3))
               SELECT (SELECT coalesce(sum(unpaid_debt_cents), 0) FROM same)
                      + (SELECT coalesce(sum(i.amount_cents - i.paid_cents), 0)
                           FROM invoices i JOIN same USING (subscriber_id)
                          WHERE i.paid_at IS NULL AND i.closed_unpaid_at IS NULL
                            AND i.due_at < $4) AS debt,
                      (SELECT coalesce(bool_or(termination_reason = 'breach'), false)
                         FROM same) AS breach""",
            kind,
            tax_number,
            person_id,
            now,
        )
        assert row is not None
        return Standing(int(row["debt"]), bool(row["breach"]))

    async def create(
        self,
        *,
        person_id: str,
        cert_fingerprint: str,
        kind: str,
        local_part: str,
        domain: str,
        mailbox_kind: str,
        details: dict[str, Any],
        admin_password_hash: str,
        terms_version: str,
        contract_pdf: bytes,
        registration_id: uuid.UUID,
        at: datetime,
        expires_at: datetime,
    ) -> Registration:
        """Hold the address and store the issued contract; raises :class:`AddressTaken`."""
        async with self._pool.acquire() as conn, conn.transaction():
            # the person's holds first (the cap below counts them: review found parallel
            # starts for different addresses each saw fewer than the cap), then the address
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", HOLDS_LOCK, person_id
            )
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", ADDRESS_LOCK, local_part
            )
            taken = await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM mailboxes WHERE local_part = $1 AND domain = $2)
                       OR EXISTS (SELECT 1 FROM registrations
                                   WHERE local_part = $1 AND completed_at IS NULL
                                     AND expires_at > $3 AND person_id <> $4)""",
                local_part,
                domain,
                at,
                person_id,
            )
            if taken:
                raise AddressTaken(local_part)
            # found in review: holds were unlimited, and starting again renewed one's own
            # hold for ever — now at most MAX_PENDING, and a restart keeps the first hold's end
            held = await conn.fetch(
                """SELECT local_part, expires_at FROM registrations
                    WHERE person_id = $1 AND completed_at IS NULL AND expires_at > $2""",
                person_id,
                at,
            )
            same = [r["expires_at"] for r in held if r["local_part"] == local_part]
            if not same and len({r["local_part"] for r in held}) >= MAX_PENDING:
                raise TooManyPending
            expires_at = min([expires_at, *same])
            row = await conn.fetchrow(
                """INSERT INTO registrations
                       (registration_id, person_id, cert_fingerprint, kind, local_part,
                        mailbox_kind, details, admin_password_hash, terms_version,
                        contract_pdf, contract_sha256, created_at, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                   RETURNING *""",
                registration_id,
                person_id,
                cert_fingerprint,
                kind,
                local_part,
                mailbox_kind,
                details,
                admin_password_hash,
                terms_version,
                contract_pdf,
                hashlib.sha256(contract_pdf).digest(),
                at,
                expires_at,
            )
            await self._audit.append(
                at,
                person_id,
                "registration.start",
                "success",
                {
                    "registration_id": str(registration_id),
                    "kind": kind,
                    "address": f"{local_part}@{domain}",
                },
                conn=conn,
            )
        assert row is not None
        return _registration(row)

    async def get(self, registration_id: uuid.UUID) -> Registration | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM registrations WHERE registration_id = $1", registration_id
        )
        return _registration(row) if row else None

    async def complete(
        self,
        registration: Registration,
        *,
        domain: str,
        state: str,
        display_name: str,
        directory_listed: bool,
        signature_format: str,
        signature: bytes,
        verification: dict[str, Any],
        signer_person_id: str,
        signer_fingerprint: str,
        as_representative: bool,
        at: datetime,
    ) -> OpenedMailbox:
        """Open the mailbox (R2.1, R2.3, R2.4); raises :class:`AddressTaken` on a race."""
        address = f"{registration.local_part}@{domain}"
        d = registration.details
        subscriber_id, contract_id = uuid.uuid4(), uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                ADDRESS_LOCK,
                registration.local_part,
            )
            done = await conn.fetchval(
                """SELECT completed_at IS NOT NULL FROM registrations
                    WHERE registration_id = $1 FOR UPDATE""",
                registration.registration_id,
            )
            exists = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE address = $1)", address
            )
            if done or exists:
                raise AddressTaken(registration.local_part)
            await conn.execute(
                """INSERT INTO subscribers
                       (subscriber_id, kind, name, tax_number, registration_number, vat_payer,
                        iban, postal_address, email, einvoice, person_id, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
                subscriber_id,
                registration.kind,
                display_name,
                d["tax_number"],
                d.get("registration_number"),
                d.get("vat_payer"),
                d.get("iban"),
                d["postal_address"],
                d["email"],
                bool(d.get("einvoice")),
                registration.person_id if registration.kind == "natural" else None,
                at,
            )
            await conn.execute(
                """INSERT INTO mailboxes
                       (address, local_part, domain, subscriber_id, kind, state, display_name,
                        directory_listed, admin_password_hash, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                address,
                registration.local_part,
                domain,
                subscriber_id,
                registration.mailbox_kind,
                state,
                display_name,
                directory_listed,
                registration.admin_password_hash,
                at,
            )
            await conn.execute(
                """INSERT INTO contracts
                       (contract_id, subscriber_id, registration_id, terms_version, contract_pdf,
                        signature_format, signature, verification, signed_by,
                        signed_as_representative, received_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
                contract_id,
                subscriber_id,
                registration.registration_id,
                registration.terms_version,
                registration.contract_pdf,
                signature_format,
                signature,
                verification,
                signer_person_id,
                as_representative,
                at,
            )
            reason = (
                "contract signed with a qualified signature"
                if state == "active"
                else "signed by a person not listed as legal representative: "
                "paper contract required within 8 days (R2.3)"
            )
            await conn.execute(
                """INSERT INTO mailbox_state_changes
                       (address, from_state, to_state, changed_at, actor, reason)
                   VALUES ($1, NULL, $2, $3, $4, $5)""",
                address,
                state,
                at,
                registration.person_id,
                reason,
            )
            await conn.execute(
                """INSERT INTO memberships
                       (address, person_id, role, permissions, added_at, added_by)
                   VALUES ($1, $2, 'custodian', $3, $4, $2)""",
                address,
                registration.person_id,
                ALL_PERMISSIONS,
                at,
            )
            for fingerprint in {registration.cert_fingerprint, signer_fingerprint}:
                await conn.execute(
                    """INSERT INTO membership_certificates
                           (address, person_id, fingerprint, added_at, added_by)
                       VALUES ($1, $2, $3, $4, $2) ON CONFLICT DO NOTHING""",
                    address,
                    registration.person_id,
                    fingerprint,
                    at,
                )
            await conn.execute(
                """UPDATE registrations SET completed_at = $2, mailbox_address = $3
                    WHERE registration_id = $1""",
                registration.registration_id,
                at,
                address,
            )
            await self._audit.append(
                at,
                registration.person_id,
                "mailbox.open",
                "success",
                {
                    "address": address,
                    "state": state,
                    "contract_id": str(contract_id),
                    "signature_format": signature_format,
                    "representative": as_representative,
                },
                conn=conn,
            )
        return OpenedMailbox(address, state, subscriber_id, contract_id)


def _registration(row: asyncpg.Record) -> Registration:
    return Registration(
        registration_id=row["registration_id"],
        person_id=row["person_id"],
        cert_fingerprint=row["cert_fingerprint"],
        kind=row["kind"],
        local_part=row["local_part"],
        mailbox_kind=row["mailbox_kind"],
        details=row["details"],
        admin_password_hash=row["admin_password_hash"],
        terms_version=row["terms_version"],
        contract_pdf=bytes(row["contract_pdf"]),
        contract_sha256=bytes(row["contract_sha256"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        completed_at=row["completed_at"],
        mailbox_address=row["mailbox_address"],
    )
