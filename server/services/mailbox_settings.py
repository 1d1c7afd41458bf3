"""Mailbox settings (R3.4, R4.2, R4.4) and notification addresses proven by a code (R5.4).

A notification address is used only after the code sent to it has been entered (proof of
possession, as Rekono and BetrSign do): only the code's SHA-256 is stored, it expires after
24 hours and five wrong entries void it. The e-mail with the code goes through the outbox in
the same transaction that stores the code, so a down mail server loses nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asn1crypto import x509

from ..clock import Clock
from ..errors import Conflict, InvalidFields, NotFound, RateLimited
from ..store.contacts import ContactStore, NotificationAddress
from ..store.mailboxes import MailboxStore
from ..store.outbox import OutboxStore
from ..trust.certs import load_der
from . import fields as f
from .mailboxes import Access, MailboxService

if TYPE_CHECKING:
    from ..store.db import Connection

CODE_TTL = timedelta(hours=24)
#: R3.4: confirmation codes to one e-mail address (from every mailbox together).
CODE_INTERVAL = timedelta(minutes=1)
CODE_WINDOW = timedelta(hours=24)
CODES_PER_DAY = 5
MAX_CODE_ATTEMPTS = 5
MAX_ADDRESSES = 5
_ENCRYPTION_USAGES = frozenset({"key_encipherment", "key_agreement", "data_encipherment"})


@dataclass(frozen=True)
class MailboxSettings:
    directory_listed: bool
    reference_listed: bool
    einvoice_signing_authorised: bool
    encryption_certificate: bool
    notification_addresses: list[NotificationAddress]


def _code_hash(address: str, email: str, code: str) -> bytes:
    return hashlib.sha256(f"{address}\n{email}\n{code}".encode()).digest()


def _encryption_cert(value: Any, now: Any) -> bytes | None:
    """R3.4/R5.5: a certificate whose key can receive encrypted content, valid now."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise f.FieldError("type")
    try:
        der = load_der(value.encode("ascii", "replace"))
        cert = x509.Certificate.load(der)
        usage = cert.key_usage_value
        not_after = cert["tbs_certificate"]["validity"]["not_after"].native
    except Exception:  # any parse failure of untrusted input is a field error
        raise f.FieldError("format") from None
    if usage is None or not (set(usage.native) & _ENCRYPTION_USAGES):
        raise f.FieldError("key_usage")
    if not_after <= now:
        raise f.FieldError("expired")
    return bytes(der)


class SettingsService:
    def __init__(
        self, clock: Clock, mailboxes: MailboxStore, contacts: ContactStore, outbox: OutboxStore
    ) -> None:
        self._clock = clock
        self._mailboxes = mailboxes
        self._contacts = contacts
        self._outbox = outbox

    async def get(self, access: Access) -> MailboxSettings:
        m = access.mailbox
        return MailboxSettings(
            directory_listed=m.directory_listed,
            reference_listed=m.reference_listed,
            einvoice_signing_authorised=m.einvoice_signing_authorised,
            encryption_certificate=m.encryption_cert is not None,
            notification_addresses=await self._contacts.of_mailbox(m.address),
        )

    async def update(self, access: Access, body: dict[str, Any]) -> None:
        MailboxService.require_manageable(access)
        c = f.Collector()
        changes: dict[str, Any] = {}
        for key in ("directory_listed", "reference_listed", "einvoice_signing_authorised"):
            if key in body:
                value = c.check(key, f.boolean, body[key])
                if value is not None:
                    changes[key] = value
        if changes.get("reference_listed") and access.mailbox.subscriber_kind != "legal":
            c.fail("reference_listed", "businesses_only")  # R4.4
        if "encryption_certificate" in body:
            now = self._clock.now()
            der = c.check(
                "encryption_certificate",
                lambda v: _encryption_cert(v, now),
                body["encryption_certificate"],
            )
            changes["encryption_cert"] = der
        unknown = set(body) - {
            "directory_listed",
            "reference_listed",
            "einvoice_signing_authorised",
            "encryption_certificate",
        }
        for key in sorted(unknown):
            c.fail(key, "unknown")
        if c.errors:
            raise InvalidFields(c.errors)
        await self._mailboxes.update_settings(
            access.mailbox.address, changes, self._clock.now(), access.actor
        )

    async def add_address(self, access: Access, body: dict[str, Any]) -> tuple[str, bool]:
        """The address and whether it is confirmed. One confirmed already stays as it is:
        no new code, and its notices go on (re-adding it unconfirmed it, found in review)."""
        MailboxService.require_manageable(access)
        c = f.Collector()
        email = c.check("email", f.email, body.get("email"))
        if c.errors or email is None:
            raise InvalidFields(c.errors)
        address = access.mailbox.address
        existing = await self._contacts.of_mailbox(address)
        if any(e.email == email and e.confirmed_at is not None for e in existing):
            return email, True
        if len(existing) >= MAX_ADDRESSES and all(e.email != email for e in existing):
            raise Conflict(f"At most {MAX_ADDRESSES} notification addresses.", "too_many")
        code = f"{secrets.randbelow(1_000_000):06d}"
        now = self._clock.now()
        async with self._contacts.pool.acquire() as conn, conn.transaction():
            await self._may_send_code(conn, email, now)
            await self._contacts.put_code(
                conn,
                address,
                email,
                _code_hash(address, email, code),
                now + CODE_TTL,
                now,
                access.actor,
            )
            await self._outbox.enqueue(
                conn,
                to=email,
                kind="email_confirmation",
                params={"mailbox": address, "code": code},
                at=now,
            )
        return email, False

    async def _may_send_code(self, conn: Connection, email: str, now: datetime) -> None:
        """R3.4: a code goes to an address at most once a minute and
        :data:`CODES_PER_DAY` times in 24 hours, from all mailboxes together. Each add
        sends a new code with five fresh tries, so without a limit a manager could flood a
        stranger's inbox, and guess without end."""
        count, first, last = await self._outbox.sent_lately(
            conn, email, "email_confirmation", now - CODE_WINDOW
        )
        wait = 0.0
        if last is not None and now - last < CODE_INTERVAL:
            wait = (last + CODE_INTERVAL - now).total_seconds()
        if count >= CODES_PER_DAY and first is not None:
            wait = max(wait, (first + CODE_WINDOW - now).total_seconds())
        if wait > 0:
            raise RateLimited(
                "A confirmation code was sent to this address just now or too often today; "
                "try again later.",
                math.ceil(wait),
            )

    async def confirm_address(self, access: Access, email: str, body: dict[str, Any]) -> None:
        MailboxService.require_manageable(access)
        address = access.mailbox.address
        contact = await self._contacts.get(address, email)
        if contact is None:
            raise NotFound("No such notification address.")
        if contact.confirmed_at is not None:
            return
        code = body.get("code")
        now = self._clock.now()
        expected = await self._contacts.take_code_attempt(address, email, now, MAX_CODE_ATTEMPTS)
        if expected is None:
            raise Conflict(
                "The code expired or was tried too often; add the address again.",
                "code_expired",
            )
        ok = isinstance(code, str) and hmac.compare_digest(
            _code_hash(address, email, code.strip()), expected
        )
        await self._contacts.record_attempt(address, email, ok, now, access.actor)
        if not ok:
            raise InvalidFields([{"field": "code", "reason": "wrong_code"}])

    async def remove_address(self, access: Access, email: str) -> None:
        MailboxService.require_manageable(access)
        if not await self._contacts.remove(
            access.mailbox.address, email, self._clock.now(), access.actor
        ):
            raise NotFound("No such notification address.")
