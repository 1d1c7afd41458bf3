"""The outbox worker (R5.4): sends queued notifications, retrying with backoff.

The scheduler's ``outbox`` job (R8.7) drains it every few seconds. Each pass claims due
rows (a row goes to one worker only, see :meth:`OutboxStore.claim_due`), sends them
concurrently and records the outcome right after each send, so in the normal course a
message is sent once. Only a crash (or a lost database) between the server's acceptance
and ``mark_sent`` sends it again, after the lease — a notification is a hint, and a
duplicate hint is better than a lost one.

Logs carry the outbox id, the kind and an error class only: never the address, the
parameters (the R3.4 confirmation code is a secret) or a server's reply text.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from ..clock import Clock
from ..store.outbox import OutboxMessage, OutboxStore
from . import templates
from .notifier import Notifier, NotifierRejected, NotifierUnavailable

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """Delay after the ``attempts``-th failure: 30 s, 60 s, 120 s, … at most one hour."""
    doublings = min(max(attempts - 1, 0), 7)  # 30 s · 2⁷ is already past the hour
    return min(FIRST_RETRY * (1 << doublings), MAX_RETRY)


class OutboxWorker:
    """``lease`` must outlast one pass; each send is cut off at half of it to make sure."""

    def __init__(
        self,
        store: OutboxStore,
        notifier: Notifier,
        clock: Clock,
        sender: str,
        max_attempts: int,
        *,
        batch: int = 10,
        lease: timedelta = timedelta(minutes=5),
        keep_trying: timedelta = timedelta(0),
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._sender = sender
        self._domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        self._max_attempts = max_attempts
        self._batch = batch
        self._lease = lease
        self._keep_trying = keep_trying

    async def run_once(self) -> int:
        """One pass: claim due messages and try each once. Returns how many were tried."""
        messages = await self._store.claim_due(self._clock.now(), self._batch, self._lease)
        results = await asyncio.gather(
            *(self._deliver(m) for m in messages), return_exceptions=True
        )
        for result in results:
            # A database failure while recording: the row keeps its lease and is tried
            # again when it runs out. Re-raised after every message had its turn.
            if isinstance(result, BaseException):
                raise result
        return len(messages)

    async def drain(self) -> int:
        """Passes until a pass finds less than a full batch (the ``outbox`` job, R8.7)."""
        total = 0
        while True:
            tried = await self.run_once()
            total += tried
            if tried < self._batch:
                return total

    async def _deliver(self, message: OutboxMessage) -> None:
        fields = {"outbox_id": message.id, "kind": message.kind}
        if message.attempts > self._max_attempts and self._spent(message):
            # Claimed again after leases ran out (a worker died with it each time).
            await self._store.give_up(message.id, self._clock.now(), "TooManyAttempts")
            log.warning("notification given up", extra={**fields, "error": "TooManyAttempts"})
            return
        try:
            email = self._compose(message)
        except ValueError as exc:
            # A message that cannot be built never will be (a TemplateError names the
            # fault; an e-mail header refusing the address is a ValueError).
            error = str(exc) if isinstance(exc, templates.TemplateError) else type(exc).__name__
            await self._store.give_up(message.id, self._clock.now(), error)
            log.warning("notification given up", extra={**fields, "error": error})
            return
        try:
            async with asyncio.timeout(self._lease.total_seconds() / 2):
                await self._notifier.send(email)
        except NotifierRejected as exc:
            await self._store.give_up(message.id, self._clock.now(), str(exc))
            log.warning("notification given up", extra={**fields, "error": str(exc)})
            return
        except Exception as exc:
            # Unavailable, our deadline (TimeoutError), or a notifier bug: retry, within
            # the attempt limit.
            error = str(exc) if isinstance(exc, NotifierUnavailable) else type(exc).__name__
            await self._failed(message, error)
            return
        await self._store.mark_sent(message.id, self._clock.now())
        log.info("notification sent", extra=fields)

    async def _failed(self, message: OutboxMessage, error: str) -> None:
        fields = {"outbox_id": message.id, "kind": message.kind, "error": error}
        now = self._clock.now()
        if message.attempts >= self._max_attempts and self._spent(message):
            await self._store.give_up(message.id, now, error)
            log.warning("notification given up", extra={**fields, "attempts": message.attempts})
            return
        retry_at = now + backoff(message.attempts)
        await self._store.mark_failed(message.id, now, error, retry_at)
        log.info("notification deferred", extra={**fields, "attempts": message.attempts})

    def _spent(self, message: OutboxMessage) -> bool:
        """Tried for the hours it must be, besides the attempts."""
        return self._clock.now() - message.created_at >= self._keep_trying

    def _compose(self, message: OutboxMessage) -> EmailMessage:
        subject, body = templates.render(message.kind, message.params)
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.to
        email["Subject"] = subject
        email["Date"] = format_datetime(self._clock.now())
        email["Message-ID"] = make_msgid(domain=self._domain)
        # RFC 3834: no auto-replies to a notification.
        email["Auto-Submitted"] = "auto-generated"
        # Quoted-printable keeps the Slovenian letters intact through any relay (7-bit).
        email.set_content(body, charset="utf-8", cte="quoted-printable")
        # RFC 3282, after set_content (which replaces the Content-* headers).
        email["Content-Language"] = "sl, en"
        return email
