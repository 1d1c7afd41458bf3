"""Certificate authentication at every transaction (R1.1–R1.4).

A check is reused for at most the revalidation interval (R1.3, 15 min), per certificate,
in a bounded per-node cache; every fresh check — success or refusal — is an audit record
(R9.1) and a success records the person and certificate (R1.4). Refusals are cached too,
so a refused card cannot make the node fetch OCSP on every request, except
``revocation_unknown``, which is transient and retried at once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..clock import Clock
from ..errors import CertificateRefused
from ..store.audit import AuditStore
from ..store.persons import PersonStore, SerialReused
from ..trust.certs import parse
from ..trust.validation import CertificateCheck

if TYPE_CHECKING:
    from ..store.db import Connection

_NOT_CACHED = frozenset({"revocation_unknown"})


class Checker(Protocol):
    async def check(
        self, certificate: bytes, moment: datetime | None = None
    ) -> CertificateCheck: ...


@dataclass(frozen=True)
class _Refusal:
    reason: str
    detail: str
    data: dict[str, Any]

    def error(self) -> CertificateRefused:
        return CertificateRefused(self.reason, self.detail, **self.data)


@dataclass(frozen=True)
class _Entry:
    at: datetime
    outcome: CertificateCheck | _Refusal


def fingerprint(certificate_der: bytes) -> str:
    return hashlib.sha256(certificate_der).hexdigest()


class Authenticator:
    def __init__(
        self,
        checker: Checker,
        persons: PersonStore,
        audit: AuditStore,
        clock: Clock,
        revalidation: timedelta,
        cache_size: int = 10_000,
    ) -> None:
        self._checker = checker
        self._persons = persons
        self._audit = audit
        self._clock = clock
        self._revalidation = revalidation
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    @property
    def revalidation(self) -> timedelta:
        return self._revalidation

    async def authenticate(
        self, certificate_der: bytes, peer: str | None, force: bool = False
    ) -> CertificateCheck:
        """The check of this certificate, fresh when the last one is older than the interval."""
        key = fingerprint(certificate_der)
        now = self._clock.now()
        entry = self._cache.get(key)
        if (
            entry is not None
            and not force
            and now - entry.at < self._revalidation
            # found in review: a cached success outlived the certificate by up to the
            # interval; one past its notAfter is checked afresh (and refused as expired)
            and not (
                isinstance(entry.outcome, CertificateCheck) and entry.outcome.facts.not_after <= now
            )
        ):
            self._cache.move_to_end(key)
            if isinstance(entry.outcome, _Refusal):
                raise entry.outcome.error()
            return entry.outcome
        try:
            check = await self._checker.check(certificate_der)
            await self._record_login(check, key, peer, now)
        except CertificateRefused as exc:
            await self._audit_refusal(certificate_der, key, exc, peer, now)
            if exc.reason not in _NOT_CACHED:
                self._remember(key, _Entry(now, _Refusal(exc.reason, exc.detail, exc.data)))
            else:
                self._cache.pop(key, None)
            raise
        self._remember(key, _Entry(now, check))
        return check

    async def _record_login(
        self, check: CertificateCheck, key: str, peer: str | None, now: datetime
    ) -> None:
        """The person and certificate with the login's audit record (R1.4, R9.1).

        A certificate whose issuer and serial number a certificate with other content
        already holds is refused (``serial_reused``): revocation names a certificate by that
        pair alone (RFC 5280 §4.1.2.2, §5.3), so one of the two could never be revoked apart
        from the other — a CA's mis-issuance or a forgery, and in development a re-issued
        dev PKI against an old database."""
        details = {
            "fingerprint": key,
            "issuer": check.facts.issuer,
            "serial": check.facts.serial,
            "peer": peer,
            "check": check.as_record(),
        }

        async def audited(conn: Connection) -> None:
            person = check.facts.person_id
            await self._audit.append(now, person, "auth.certificate", "success", details, conn=conn)

        try:
            await self._persons.record_login(check.facts, check.loa.value, now, audited)
        except SerialReused as exc:
            raise CertificateRefused(
                "serial_reused",
                "Another certificate with this issuer and serial number is already on record; "
                "a CA must never reuse a serial number, so this certificate is refused.",
                known_fingerprint=exc.known,
            ) from None

    async def recheck(self, certificate_der: bytes, actor: str) -> CertificateRefused | None:
        """A fresh check for a job (R1.3, the ``sessions`` job): the refusal, or None.

        Unlike :meth:`authenticate` it records no login (nobody logged in); a refusal is
        audited and cached like any other, so this node refuses the certificate at once.
        """
        key = fingerprint(certificate_der)
        now = self._clock.now()
        try:
            await self._checker.check(certificate_der)
        except CertificateRefused as exc:
            await self._audit_refusal(certificate_der, key, exc, actor, now)
            if exc.reason not in _NOT_CACHED:
                self._remember(key, _Entry(now, _Refusal(exc.reason, exc.detail, exc.data)))
            return exc
        return None

    def forget(self, certificate_der: bytes) -> None:
        self._cache.pop(fingerprint(certificate_der), None)

    def _remember(self, key: str, entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _audit_refusal(
        self, der: bytes, key: str, exc: CertificateRefused, peer: str | None, now: datetime
    ) -> None:
        actor = None
        if exc.reason != "malformed":
            try:
                actor = parse(der)[1].person_id
            except CertificateRefused:
                actor = None
        details: dict[str, Any] = {"fingerprint": key, "reason": exc.reason, "peer": peer}
        details.update({k: v for k, v in exc.data.items() if k != "check"})
        await self._audit.append(now, actor, "auth.certificate", "refused", details)
