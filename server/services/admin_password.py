"""The mailbox admin password (R1.5): asked on top of the certificate for sensitive changes.

Five wrong passwords in a row lock it for 15 minutes; each further lock doubles
(15, 30, 60 … minutes); a right password resets both counters. Every try — right, wrong,
or made while locked — is an audit record. The argon2id verification runs in a thread so
the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import math

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..clock import Clock
from ..errors import AdminPasswordLocked, InvalidFields, Refused
from ..store.audit import AuditStore
from ..store.mailboxes import MAX_FAILURES, MailboxStore

_hasher = PasswordHasher()


def _verify(hashed: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(hashed, password))
    except (VerificationError, InvalidHashError):
        return False


class AdminPasswordGuard:
    def __init__(self, mailboxes: MailboxStore, audit: AuditStore, clock: Clock) -> None:
        self._mailboxes = mailboxes
        self._audit = audit
        self._clock = clock

    async def require(self, address: str, password: object, actor: str, purpose: str) -> None:
        """Raise unless ``password`` is the admin password of ``address`` (and not locked)."""
        if not isinstance(password, str) or not password:
            raise InvalidFields([{"field": "admin_password", "reason": "required"}])
        mailbox = await self._mailboxes.get(address)
        if mailbox is None:
            raise Refused("You are not a member of this mailbox.", "not_member")
        now = self._clock.now()
        details = {"address": address, "purpose": purpose}
        taken = await self._mailboxes.take_password_try(address, now)
        if taken is None:
            await self._audit.append(now, actor, "mailbox.admin_password", "locked", details)
            current = await self._mailboxes.get(address)
            until = current.admin_locked_until if current else None
            until = until or now
            wait = max(1, math.ceil((until - now).total_seconds()))
            raise AdminPasswordLocked(until.isoformat(), wait)
        if await asyncio.to_thread(_verify, taken.password_hash, password):
            await self._mailboxes.record_password_success(address)
            await self._audit.append(now, actor, "mailbox.admin_password", "success", details)
            return
        counters = taken.counters
        await self._audit.append(
            now, actor, "mailbox.admin_password", "refused",
            {**details, "failures": counters.failures, "locks": counters.locks},
        )  # fmt: skip
        if counters.locked_until is not None and counters.locked_until > now:
            wait = math.ceil((counters.locked_until - now).total_seconds())
            raise AdminPasswordLocked(counters.locked_until.isoformat(), wait)
        raise Refused(
            "The admin password is not right.",
            "admin_password_wrong",
            tries_left=MAX_FAILURES - counters.failures,
        )
