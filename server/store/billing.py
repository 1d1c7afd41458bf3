"""Invoices and payments in SQL (R8.2, R8.3).

Every write is one transaction that also writes the audit record and the e-mail notice,
and each is conditional on the state it expects, so the daily ``billing`` job can run on
any node, twice, or after a crash without issuing, reminding or closing anything twice:
an invoice is unique per (subscriber, kind, period), a reminder stage is written only
above the stage already sent, a closure only for an invoice not yet closed for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from .audit import AuditStore
from .lifecycle import OPEN_STATES, LifecycleStore, notify_mailbox
from .outbox import OutboxStore

#: States a mailbox is billed in: open and in service (not suspended, R2.3).
BILLED_STATES = ("temporary", "active")

if TYPE_CHECKING:
    from .db import Connection


class _AlreadyIssued(Exception):
    """An overlapping issuer wrote this period's invoice first: roll back the number."""


class PaymentReplayed(Exception):
    """A payment with this (source, reference) is already recorded."""


class UnknownInvoice(Exception):
    pass


@dataclass(frozen=True)
class Invoice:
    invoice_id: uuid.UUID
    number: str
    subscriber_id: uuid.UUID
    kind: str
    period: str
    amount_cents: int
    issued_at: datetime
    due_at: datetime
    paid_cents: int
    paid_at: datetime | None
    reminders_sent: int
    closed_unpaid_at: datetime | None

    @property
    def outstanding_cents(self) -> int:
        return max(self.amount_cents - self.paid_cents, 0)


@dataclass(frozen=True)
class Billable:
    subscriber_id: uuid.UUID
    singles: int
    multis: int
    einvoice: bool


def _invoice(row: asyncpg.Record) -> Invoice:
    return Invoice(**{k: row[k] for k in Invoice.__dataclass_fields__})


class BillingStore:
    def __init__(self, pool: asyncpg.Pool, audit: AuditStore, lifecycle: LifecycleStore) -> None:
        self.pool = pool
        self._audit = audit
        self._lifecycle = lifecycle
        self._outbox = OutboxStore(pool)

    async def billable(self) -> list[Billable]:
        """Subscribers with mailboxes in service, with how many of each kind (R8.2 price
        list). A suspended mailbox — its paper contract never came (R2.3) — is not in
        service and not billed."""
        rows = await self.pool.fetch(
            """SELECT s.subscriber_id, s.einvoice,
                      count(*) FILTER (WHERE m.kind = 'single') AS singles,
                      count(*) FILTER (WHERE m.kind = 'multi') AS multis
                 FROM subscribers s JOIN mailboxes m USING (subscriber_id)
                WHERE m.state = ANY($1::text[]) AND s.terminated_at IS NULL
                GROUP BY s.subscriber_id, s.einvoice ORDER BY s.subscriber_id""",
            list(BILLED_STATES),
        )
        return [
            Billable(r["subscriber_id"], r["singles"], r["multis"], r["einvoice"]) for r in rows
        ]

    async def issue(
        self,
        subscriber_id: uuid.UUID,
        kind: str,
        period: str,
        amount_cents: int,
        issued_at: datetime,
        due_at: datetime,
    ) -> Invoice | None:
        """The invoice, or None when this period's was issued already."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                # Invoice numbers run without gaps: no number is drawn for an invoice that
                # exists already (the job's advisory lock keeps a second issuer out).
                exists = await conn.fetchval(
                    """SELECT EXISTS (SELECT 1 FROM invoices
                                       WHERE subscriber_id = $1 AND kind = $2 AND period = $3)""",
                    subscriber_id,
                    kind,
                    period,
                )
                if exists:
                    return None
                # the counter row (migration 0017) rolls back with this transaction, as a
                # sequence would not: no number is drawn for an invoice that is not written
                seq = await conn.fetchval(
                    "UPDATE invoice_counter SET last = last + 1 RETURNING last"
                )
                row = await conn.fetchrow(
                    """INSERT INTO invoices (invoice_id, number, subscriber_id, kind, period,
                                             amount_cents, issued_at, due_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                       ON CONFLICT (subscriber_id, kind, period) DO NOTHING
                       RETURNING *""",
                    uuid.uuid4(),
                    f"{issued_at:%Y-%m}-{seq:06d}",
                    subscriber_id,
                    kind,
                    period,
                    amount_cents,
                    issued_at,
                    due_at,
                )
                if row is None:  # issued meanwhile: the number drawn goes back (found in review)
                    raise _AlreadyIssued
                invoice = _invoice(row)
                await self._audit.append(
                    issued_at,
                    "system:billing",
                    "billing.invoice_issued",
                    "success",
                    {
                        "invoice": invoice.number,
                        "kind": kind,
                        "period": period,
                        "cents": amount_cents,
                    },
                    conn=conn,
                )
                await self._notify(conn, subscriber_id, "invoice_issued", issued_at)
        except _AlreadyIssued:  # raised inside the transaction: its number rolled back
            return None
        return invoice

    async def _notify(
        self, conn: Connection, subscriber_id: uuid.UUID, notice: str, at: datetime
    ) -> None:
        address = await conn.fetchval(
            "SELECT address FROM mailboxes WHERE subscriber_id = $1 ORDER BY created_at LIMIT 1",
            subscriber_id,
        )
        if address is not None:
            await notify_mailbox(conn, self._outbox, address, {"notice": notice}, at)

    async def unpaid_past_due(self, now: datetime) -> list[Invoice]:
        rows = await self.pool.fetch(
            """SELECT * FROM invoices
                WHERE paid_at IS NULL AND due_at < $1 AND closed_unpaid_at IS NULL
                ORDER BY due_at""",
            now,
        )
        return [_invoice(r) for r in rows]

    async def remind(self, invoice: Invoice, stage: int, at: datetime) -> bool:
        """Reminder ``stage`` (1, 2, …) of an unpaid invoice, once."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE invoices SET reminders_sent = $2
                    WHERE invoice_id = $1 AND reminders_sent < $2 AND paid_at IS NULL""",
                invoice.invoice_id,
                stage,
            )
            if status != "UPDATE 1":
                return False
            await self._audit.append(
                at,
                "system:billing",
                "billing.reminder",
                "info",
                {"invoice": invoice.number, "stage": stage},
                conn=conn,
            )
            await self._notify(conn, invoice.subscriber_id, "payment_reminder", at)
        return True

    async def close_unpaid(self, invoice: Invoice, at: datetime) -> int:
        """R8.3: close every open mailbox of the subscriber; the debt is recorded (R2.5)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT amount_cents - paid_cents AS outstanding FROM invoices
                    WHERE invoice_id = $1 AND paid_at IS NULL AND closed_unpaid_at IS NULL
                    FOR UPDATE""",
                invoice.invoice_id,
            )
            if row is None:
                return 0
            await conn.execute(
                "UPDATE invoices SET closed_unpaid_at = $2 WHERE invoice_id = $1",
                invoice.invoice_id,
                at,
            )
            await conn.execute(
                """UPDATE subscribers SET unpaid_debt_cents = unpaid_debt_cents + $2
                    WHERE subscriber_id = $1""",
                invoice.subscriber_id,
                row["outstanding"],
            )
            addresses = await conn.fetch(
                """SELECT address FROM mailboxes WHERE subscriber_id = $1
                      AND state = ANY($2::text[]) ORDER BY address""",
                invoice.subscriber_id,
                list(OPEN_STATES),
            )
            closed = 0
            for r in addresses:
                changed = await self._lifecycle.transition(
                    r["address"],
                    "closed",
                    at,
                    "system:billing",
                    f"invoice {invoice.number} unpaid 30 days after it fell due (R8.3)",
                    expect=OPEN_STATES,
                    notice="closed",
                    closure_reason="unpaid",
                    conn=conn,
                )
                closed += changed is not None
        return closed

    async def record_payment(
        self,
        number: str,
        amount_cents: int,
        source: str,
        reference: str,
        actor: str,
        at: datetime,
    ) -> Invoice:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM invoices WHERE number = $1 FOR UPDATE", number)
            if row is None:
                raise UnknownInvoice(number)
            invoice = _invoice(row)
            try:
                async with conn.transaction():
                    await conn.execute(
                        """INSERT INTO payments (payment_id, invoice_id, amount_cents,
                               received_at, source, reference, recorded_by)
                           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                        uuid.uuid4(),
                        invoice.invoice_id,
                        amount_cents,
                        at,
                        source,
                        reference,
                        actor,
                    )
            except asyncpg.UniqueViolationError:
                raise PaymentReplayed(reference) from None
            paid = invoice.paid_cents + amount_cents
            updated = await conn.fetchrow(
                """UPDATE invoices SET paid_cents = $2,
                          paid_at = CASE WHEN $2 >= amount_cents THEN $3::timestamptz END
                    WHERE invoice_id = $1 RETURNING *""",
                invoice.invoice_id,
                paid,
                at,
            )
            if invoice.closed_unpaid_at is not None:
                # the debt recorded at closure shrinks; the mailbox stays closed (R8.3)
                await conn.execute(
                    """UPDATE subscribers
                          SET unpaid_debt_cents = greatest(unpaid_debt_cents - $2, 0)
                        WHERE subscriber_id = $1""",
                    invoice.subscriber_id,
                    min(amount_cents, invoice.outstanding_cents),
                )
            await self._audit.append(
                at,
                actor,
                "billing.payment",
                "success",
                {"invoice": number, "cents": amount_cents, "source": source},
                conn=conn,
            )
        assert updated is not None
        return _invoice(updated)
