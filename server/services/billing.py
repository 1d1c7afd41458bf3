"""R8.2, R8.3: monthly invoices, reminders, closure for non-payment, and payments.

The ``billing`` job runs daily. It issues the month's subscription invoice to every
subscriber with an open mailbox (the price list in settings, per mailbox kind) and, for
subscribers of the e-invoice service, the year's quota in advance (R7.3); each is due
15 days after issue. Past the due date it sends the reminders (7 and 21 days) and, when an
invoice is still unpaid 30 days after it fell due, closes the subscriber's mailboxes and
tells their members (R8.3). Every edge is ``>=``: day 30 after due closes, day 29 does not.

Payments come from an operator (``vep admin payment record``) or from the payment
provider's webhook, signed with HMAC-SHA256 over ``timestamp + "." + body`` with a shared
secret; a timestamp more than 5 minutes away from now, a bad signature or an event id seen
before is refused and nothing is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ..clock import Clock
from ..errors import BadRequest, Conflict, InvalidFields, NotFound
from ..settings import Settings
from ..store.billing import BillingStore, Invoice, PaymentReplayed, UnknownInvoice
from .json_body import parse_object

Done = Callable[[int], Awaitable[None]]
SIGNATURE_HEADER = "X-VEP-Signature"
TIMESTAMP_HEADER = "X-VEP-Timestamp"


#: The largest payment recorded (10 billion euros) and the longest reference kept: past
#: them PostgreSQL's bigint or its index row refused the write (a 500, found in review).
MAX_PAYMENT_CENTS = 10**12
MAX_REFERENCE = 200


def parse_amount(text: str) -> int:
    """``"12.50"`` (euros) → 1250 cents; at most two decimals, more than zero."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidFields([{"field": "amount", "reason": "not_a_number"}]) from None
    if not value.is_finite():
        raise InvalidFields([{"field": "amount", "reason": "not_a_number"}])
    cents = value * 100
    if cents != cents.to_integral_value() or cents <= 0:
        raise InvalidFields([{"field": "amount", "reason": "positive_with_two_decimals"}])
    if cents > MAX_PAYMENT_CENTS:
        raise InvalidFields([{"field": "amount", "reason": "too_large"}])
    return int(cents)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(
        secret.encode(), timestamp.encode("utf-8", "surrogateescape") + b"." + body, hashlib.sha256
    )
    return "sha256=" + mac.hexdigest()


class BillingService:
    def __init__(self, settings: Settings, clock: Clock, store: BillingStore) -> None:
        self._rules = settings.lifecycle
        self._clock = clock
        self._store = store

    async def run(self, now: datetime, done: Done) -> int:
        """The ``billing`` job: issue, remind, close — each step once."""
        count = await self._issue(now, done)
        reminders = self._rules.reminder_days
        closure = timedelta(days=self._rules.closure_days_unpaid)
        for invoice in await self._store.unpaid_past_due(now):
            overdue = now - invoice.due_at
            if overdue >= closure:
                if await self._store.close_unpaid(invoice, now):
                    count += 1
                    await done(1)
                continue
            stage = sum(1 for day in reminders if overdue >= timedelta(days=day))
            if stage > invoice.reminders_sent and await self._store.remind(invoice, stage, now):
                count += 1
                await done(1)
        return count

    async def _issue(self, now: datetime, done: Done) -> int:
        count = 0
        due = now + timedelta(days=self._rules.invoice_due_days)
        for b in await self._store.billable():
            amount = b.singles * self._rules.price_single_cents
            amount += b.multis * self._rules.price_multi_cents
            issued = []
            if amount > 0:
                issued.append(("subscription", f"{now:%Y-%m}", amount))
            if b.einvoice and self._rules.price_einvoice_yearly_cents > 0:
                issued.append(
                    ("einvoice_quota", f"{now:%Y}", self._rules.price_einvoice_yearly_cents)
                )
            for kind, period, cents in issued:
                if await self._store.issue(b.subscriber_id, kind, period, cents, now, due):
                    count += 1
                    await done(1)
        return count

    async def record_by_operator(
        self, number: str, amount: str, operator: str, reference: str | None
    ) -> Invoice:
        now = self._clock.now()
        if reference is not None and len(reference) > MAX_REFERENCE:
            raise InvalidFields([{"field": "reference", "reason": "too_long"}])
        ref = reference or f"operator:{operator}:{now.isoformat()}"
        return await self._record(
            number, parse_amount(amount), "operator", ref, f"operator:{operator}"
        )

    async def webhook(self, headers: dict[str, str], body: bytes) -> Invoice:
        """R8.2: a payment announced by the payment provider, if its signature holds."""
        secret = self._rules.payment_webhook_secret
        if secret is None:
            raise NotFound("No payment webhook is configured.")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        sent = headers.get(SIGNATURE_HEADER, "")
        # aiohttp hands undecodable header bytes over as surrogates: compare them as bytes
        expected = webhook_signature(secret, timestamp, body).encode()
        if not hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected):
            raise BadRequest("The webhook signature does not match.", "bad_signature")
        try:
            at = datetime.fromtimestamp(int(timestamp), self._clock.now().tzinfo)
        except (ValueError, OverflowError, OSError):
            raise BadRequest("The webhook timestamp is not a Unix time.", "bad_timestamp") from None
        tolerance = timedelta(seconds=self._rules.payment_webhook_tolerance_seconds)
        if abs(self._clock.now() - at) > tolerance:
            raise BadRequest(
                "The webhook timestamp is too far from now (replayed or delayed).",
                "stale_timestamp",
            )
        event = _event(body)
        return await self._record(
            event["invoice"],
            event["amount_cents"],
            "webhook",
            event["event_id"],
            "payment-provider",
        )

    async def _record(
        self, number: str, cents: int, source: str, reference: str, actor: str
    ) -> Invoice:
        try:
            return await self._store.record_payment(
                number, cents, source, reference, actor, self._clock.now()
            )
        except UnknownInvoice:
            raise NotFound(f"No invoice {number}.") from None
        except PaymentReplayed:
            raise Conflict("This payment was recorded already.", "replay") from None


def _event(body: bytes) -> dict[str, Any]:
    event = parse_object(body, "body")  # signed by the provider, but still checked
    errors = []
    for key, kind in (("event_id", str), ("invoice", str), ("amount_cents", int)):
        value = event.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or not value:
            errors.append({"field": key, "reason": "required"})
    if not errors and event["amount_cents"] <= 0:
        errors.append({"field": "amount_cents", "reason": "positive"})
    if not errors and event["amount_cents"] > MAX_PAYMENT_CENTS:
        errors.append({"field": "amount_cents", "reason": "too_large"})
    if not errors and len(event["event_id"]) > MAX_REFERENCE:
        errors.append({"field": "event_id", "reason": "too_long"})
    if errors:
        raise InvalidFields(errors)
    return event
