"""Browser sessions bound to the client certificate (R1.3, R1.6).

The cookie value is a random token; only its SHA-256 is stored. A session is usable only
with the certificate it was opened with, ends after 30 minutes idle or on logout, and its
certificate is checked again once the revalidation interval has passed (its last activity
is recorded to the minute: :data:`SEEN_STEP`): a certificate
revoked meanwhile ends the session (and every other open session of that certificate).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import Clock
from ..errors import CertificateRefused, SessionEnded
from ..store.sessions import SessionRow, SessionStore
from ..trust.validation import CertificateCheck
from .authentication import Authenticator, fingerprint

#: How finely a session's last activity is recorded (R1.6), at most (a 30th of a shorter
#: idle time). An unrecorded request is less than this after the recorded one, so an idle
#: session ends up to this much before the idle time has passed since its last request —
#: never after.
SEEN_STEP = timedelta(minutes=1)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class OpenSession:
    token: str | None  # set only when the session was just started (to send the cookie)
    row: SessionRow
    check: CertificateCheck


class SessionService:
    def __init__(
        self,
        store: SessionStore,
        authenticator: Authenticator,
        clock: Clock,
        idle: timedelta,
    ) -> None:
        self._store = store
        self._auth = authenticator
        self._clock = clock
        self._idle = idle

    async def start(self, check: CertificateCheck, peer: str | None) -> OpenSession:
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        row = await self._store.create(
            token_hash(token),
            check.facts.person_id,
            check.facts.fingerprint,
            secrets.token_urlsafe(32),
            now,
            {"fingerprint": check.facts.fingerprint, "peer": peer, "loa": check.loa.value},
        )
        return OpenSession(token, row, check)

    async def resume(self, token: str, certificate_der: bytes, peer: str | None) -> OpenSession:
        """The open session of this cookie, revalidated when due; raises when it is over."""
        digest = token_hash(token)
        row = await self._store.get(digest)
        if row is None or row.ended_at is not None:
            raise SessionEnded("The session has ended; start a new one.", "session_ended")
        now = self._clock.now()
        if row.cert_fingerprint != fingerprint(certificate_der):
            await self._end(row, "certificate_mismatch")
            raise SessionEnded(
                "The session belongs to another certificate.", "session_certificate_mismatch"
            )
        if now - row.last_seen_at >= self._idle:
            await self._end(row, "idle")
            raise SessionEnded(
                "The session ended after 30 minutes without activity.", "session_expired"
            )
        due = now - row.validated_at >= self._auth.revalidation
        try:
            check = await self._auth.authenticate(certificate_der, peer, force=due)
        except CertificateRefused as exc:
            await self._end(row, exc.reason)
            if exc.reason == "revoked":
                await self._store.end_all_for_certificate(row.cert_fingerprint, now, "revoked")
            raise
        # Bookkeeping in the application's clock, like the interval it is compared with;
        # written only when it moves the idle deadline by a step (or a check was made), so
        # a page and its requests do not each pay a durable UPDATE.
        if due or now - row.last_seen_at >= min(SEEN_STEP, self._idle / 30):
            await self._store.touch(digest, now, now if due else row.validated_at)
        return OpenSession(None, row, check)

    async def sweep(self, now: datetime, done: Callable[[int], Awaitable[None]]) -> int:
        """The ``sessions`` job (R1.3): end idle sessions, and every session whose certificate
        has expired or is now refused (revoked) — without waiting for its next request.
        A check that cannot decide (OCSP away) ends nothing."""
        ended = await self._store.end_idle(now - self._idle, now)
        if ended:
            await done(ended)
        for fp, der, not_after in await self._store.open_certificates():
            reason = None
            if not_after <= now:
                reason = "expired"
            else:
                refused = await self._auth.recheck(der, "job:sessions")
                if refused is not None and refused.reason != "revocation_unknown":
                    reason = refused.reason
            if reason is None:
                continue
            count = await self._store.end_all_for_certificate(fp, now, reason)
            if count:
                ended += count
                await done(count)
        return ended

    async def logout(self, row: SessionRow) -> None:
        await self._end(row, "logout")

    async def _end(self, row: SessionRow, reason: str) -> None:
        await self._store.end(row, self._clock.now(), reason)
