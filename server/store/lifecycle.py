"""Mailbox lifecycle in SQL: state transitions with their notices, and what the jobs look for.

:meth:`LifecycleStore.transition` is the one place a job moves a mailbox: in one
transaction it locks the row, checks the state it expects (so a second node or a second
run changes nothing), writes the state and the closure facts, the state history (R3.3),
the audit record (R9.1), the e-mail notices (R8.3: "its members are told"), and — when the
subscriber's last open mailbox closes — the end of the contract, from which R8.6 counts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .audit import AuditStore
from .mailboxes import StateChange, record_state_change
from .outbox import OutboxStore

if TYPE_CHECKING:
    from .db import Connection

OPEN_STATES = ("temporary", "active", "suspended")
#: Finished notices forgotten per statement: one transaction stays short on a big outbox.
_FORGET_BATCH = 1000


@dataclass(frozen=True)
class CertificateHolding:
    """A mailbox with the certificates enrolled for its members (R8.3 certificates job)."""

    address: str
    subscriber_kind: str
    registration_number: str | None
    certificate_notice_at: datetime | None
    certificates: tuple[bytes, ...]


async def mailbox_emails(conn: Connection, address: str) -> list[str]:
    """Where a mailbox's notices go: its confirmed addresses and the subscriber's e-mail."""
    rows = await conn.fetch(
        """SELECT email FROM notification_addresses
            WHERE address = $1 AND confirmed_at IS NOT NULL
           UNION
           SELECT s.email FROM mailboxes m JOIN subscribers s USING (subscriber_id)
            WHERE m.address = $1 AND s.personal_data_removed_at IS NULL""",
        address,
    )
    return [row["email"] for row in rows if row["email"]]


async def notify_mailbox(
    conn: Connection,
    outbox: OutboxStore,
    address: str,
    params: dict[str, str],
    at: datetime,
    *,
    kind: str = "mailbox_notice",
) -> int:
    """Queue a ``kind`` e-mail (``params`` and the mailbox's address) to the mailbox's
    confirmed addresses and the subscriber's e-mail; returns how many were queued."""
    emails = await mailbox_emails(conn, address)
    for email in emails:
        await outbox.enqueue(
            conn, to=email, kind=kind, params={"mailbox": address, **params}, at=at
        )
    return len(emails)


class LifecycleStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore) -> None:
        self.pool = pool
        self._audit = audit
        self._outbox = OutboxStore(pool)

    async def transition(
        self,
        address: str,
        to_state: str,
        at: datetime,
        actor: str,
        reason: str,
        *,
        expect: tuple[str, ...],
        notice: str | None = None,
        closure_reason: str | None = None,
        readonly_until: datetime | None = None,
        conn: Connection | None = None,
    ) -> StateChange | None:
        """Move ``address`` from one of ``expect`` to ``to_state``; None if not in them."""
        if conn is None:
            async with self.pool.acquire() as own, own.transaction():
                return await self.transition(
                    address,
                    to_state,
                    at,
                    actor,
                    reason,
                    expect=expect,
                    notice=notice,
                    closure_reason=closure_reason,
                    readonly_until=readonly_until,
                    conn=own,
                )
        # NO KEY UPDATE, not UPDATE: a submission's foreign-key checks take KEY SHARE on the
        # mailboxes after its audit append, and FOR UPDATE would deadlock with that order.
        row = await conn.fetchrow(
            "SELECT state, subscriber_id, paper_contract_received_at FROM mailboxes"
            " WHERE address = $1 FOR NO KEY UPDATE",
            address,
        )
        if row is None or row["state"] not in expect:
            return None
        if to_state == "suspended" and row["paper_contract_received_at"] is not None:
            return None  # R2.3: the paper contract arrived meanwhile (activation follows)
        current = row["state"]
        await conn.execute(
            """UPDATE mailboxes
                  SET state = $2,
                      closed_at = CASE WHEN $2 = 'closed' THEN coalesce(closed_at, $3)
                                       ELSE closed_at END,
                      closure_reason = CASE WHEN $2 = 'closed' THEN coalesce(closure_reason, $4)
                                            ELSE closure_reason END,
                      readonly_until = $5,
                      certificate_notice_at = CASE WHEN $2 = 'closed' THEN NULL
                                                   ELSE certificate_notice_at END
                WHERE address = $1""",
            address,
            to_state,
            at,
            closure_reason,
            readonly_until,
        )
        change = StateChange(address, current, to_state, at, actor, reason)
        await record_state_change(conn, self._audit, change)
        if to_state == "closed":
            await self._end_contract_if_last(conn, row["subscriber_id"], at, closure_reason)
        if notice is not None:
            await notify_mailbox(conn, self._outbox, address, {"notice": notice}, at)
        return change

    async def _end_contract_if_last(
        self, conn: Connection, subscriber_id: Any, at: datetime, reason: str | None
    ) -> None:
        await conn.execute(
            """UPDATE subscribers SET terminated_at = $2, termination_reason = $3
                WHERE subscriber_id = $1 AND terminated_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM mailboxes
                                   WHERE subscriber_id = $1 AND state = ANY($4::text[]))""",
            subscriber_id,
            at,
            reason,
            list(OPEN_STATES),
        )

    async def close_on_request(
        self,
        address: str,
        person_id: str,
        fingerprint: str,
        document: bytes,
        signature: bytes,
        at: datetime,
    ) -> StateChange | None:
        """R8.3: store the signed request and close the mailbox, both or neither."""
        async with self.pool.acquire() as conn, conn.transaction():
            changed = await self.transition(
                address,
                "closed",
                at,
                person_id,
                "closed on the subscriber's signed request (R8.3)",
                expect=("temporary", "active", "suspended"),
                notice="closed",
                closure_reason="subscriber_request",
                conn=conn,
            )
            if changed is None:
                return None
            await conn.execute(
                """INSERT INTO closure_requests (request_id, address, person_id,
                       cert_fingerprint, document, signature, requested_at, acted_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7)""",
                uuid.uuid4(),
                address,
                person_id,
                fingerprint,
                document,
                signature,
                at,
            )
        return changed

    async def closure_of(self, address: str) -> tuple[str, datetime | None] | None:
        """(state, closed_at) of a mailbox, or None when there is no such mailbox."""
        row = await self.pool.fetchrow(
            "SELECT state, closed_at FROM mailboxes WHERE address = $1", address
        )
        return (row["state"], row["closed_at"]) if row else None

    async def temporary_overdue(self, created_before: datetime) -> list[str]:
        """R2.3: temporary mailboxes opened at or before the cutoff with no paper contract."""
        rows = await self.pool.fetch(
            """SELECT address FROM mailboxes
                WHERE state = 'temporary' AND paper_contract_received_at IS NULL
                  AND created_at <= $1 ORDER BY created_at""",
            created_before,
        )
        return [r["address"] for r in rows]

    async def readonly_ended(self, now: datetime) -> list[str]:
        rows = await self.pool.fetch(
            """SELECT address FROM mailboxes
                WHERE state = 'readonly' AND readonly_until <= $1 ORDER BY readonly_until""",
            now,
        )
        return [r["address"] for r in rows]

    async def holdings(self) -> list[CertificateHolding]:
        """Open mailboxes with every certificate enrolled for their members (R8.3)."""
        rows = await self.pool.fetch(
            """SELECT m.address, s.kind, s.registration_number, m.certificate_notice_at,
                      coalesce(array_agg(c.der ORDER BY c.fingerprint)
                               FILTER (WHERE c.der IS NOT NULL), '{}') AS ders
                 FROM mailboxes m
                 JOIN subscribers s USING (subscriber_id)
                 LEFT JOIN membership_certificates mc ON mc.address = m.address
                 LEFT JOIN certificates c ON c.fingerprint = mc.fingerprint
                WHERE m.state = ANY($1::text[])
                GROUP BY m.address, s.kind, s.registration_number, m.certificate_notice_at
                ORDER BY m.address""",
            list(OPEN_STATES),
        )
        return [
            CertificateHolding(
                r["address"],
                r["kind"],
                r["registration_number"],
                r["certificate_notice_at"],
                tuple(bytes(d) for d in r["ders"]),
            )
            for r in rows
        ]

    async def set_certificate_notice(self, address: str, at: datetime | None, actor: str) -> bool:
        """Record (``at``) or clear (None) the R8.3 notice; notify when it is recorded."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE mailboxes SET certificate_notice_at = $2
                    WHERE address = $1 AND state = ANY($3::text[])
                      AND certificate_notice_at IS DISTINCT FROM $2
                      AND (($2::timestamptz IS NULL) <> (certificate_notice_at IS NULL))""",
                address,
                at,
                list(OPEN_STATES),
            )
            if status != "UPDATE 1":
                return False
            detail = {"address": address, "notice": "certificate_missing" if at else "cleared"}
            await self._audit.append(
                at or await conn.fetchval("SELECT now()"),
                actor,
                "mailbox.certificate_notice",
                "info",
                detail,
                conn=conn,
            )
            if at is not None:
                await notify_mailbox(
                    conn, self._outbox, address, {"notice": "certificate_missing"}, at
                )
        return True

    async def personal_data_due(self, ended_before: datetime) -> list[Any]:
        rows = await self.pool.fetch(
            """SELECT subscriber_id FROM subscribers
                WHERE terminated_at <= $1 AND personal_data_removed_at IS NULL
                ORDER BY terminated_at""",
            ended_before,
        )
        return [r["subscriber_id"] for r in rows]

    async def remove_personal_data(self, subscriber_id: Any, at: datetime, actor: str) -> bool:
        """R8.6: blank what identifies the subscriber; evidence and signed contracts stay
        (they are the proof R6/R8.1 keep, and their bytes are sealed)."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE subscribers
                      SET name = '[removed]', tax_number = '', iban = NULL,
                          postal_address = '{}'::jsonb, email = '',
                          personal_data_removed_at = $2
                    WHERE subscriber_id = $1 AND personal_data_removed_at IS NULL
                      AND terminated_at IS NOT NULL""",
                subscriber_id,
                at,
            )
            if status != "UPDATE 1":
                return False
            await conn.execute(
                """DELETE FROM notification_addresses
                    WHERE address IN (SELECT address FROM mailboxes WHERE subscriber_id = $1)""",
                subscriber_id,
            )
            await conn.execute(
                """UPDATE registrations SET details = '{}'::jsonb
                    WHERE mailbox_address IN
                          (SELECT address FROM mailboxes WHERE subscriber_id = $1)""",
                subscriber_id,
            )
            await self._audit.append(
                at,
                actor,
                "subscriber.personal_data_removed",
                "success",
                {"subscriber_id": str(subscriber_id)},
                conn=conn,
            )
        return True

    async def forget_notice_addresses(self, finished_before: datetime, at: datetime) -> int:
        """R8.6: notices that finished (sent or given up) at or before ``finished_before``
        forget the e-mail address they went to; returns how many did.

        Their parameters went when they finished, so nothing links such a row to its
        subscriber any more, and it cannot wait for that contract's end: it goes by its own
        age. A notice goes out while its contract runs or as it ends, so this is never
        later than the period after the contract's end (but for the minutes the last notice
        takes to go out), and earlier while a contract still runs, which "at most" allows.
        The record of the notice itself (kind, times, outcome) stays, as logs do (7 years
        at least). One statement per batch, each in its own transaction with its audit
        record."""
        forgotten = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    # the literal '[removed]' matches the partial index (migration 0016)
                    """UPDATE outbox SET recipient = '[removed]'
                        WHERE id IN (SELECT id FROM outbox
                                      WHERE recipient <> '[removed]'
                                        AND (sent_at IS NOT NULL OR given_up_at IS NOT NULL)
                                        AND coalesce(sent_at, given_up_at) <= $1
                                      LIMIT $2
                                        FOR UPDATE SKIP LOCKED)""",
                    finished_before,
                    _FORGET_BATCH,
                )
                count = int(status.split()[-1])
                if count == 0:
                    return forgotten
                await self._audit.append(
                    at,
                    "system:personal-data",
                    "outbox.addresses_removed",
                    "success",
                    {"notices": count},
                    conn=conn,
                )
            forgotten += count
