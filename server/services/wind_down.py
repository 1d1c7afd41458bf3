"""R8.5: the provider's wind-down — announced by one operator, effective when two different
operators confirmed it (four-eyes), then 45 days of service on a fixed calendar.

- ``vep admin wind-down announce --operator NAME`` records a *pending* announcement: a
  document (its id, date, the announcing operator and what follows, Slovenian and English)
  that each confirming operator signs with their own qualified certificate (detached CAdES,
  e.g. ``vep sign-contract --cades``).
- ``vep admin wind-down confirm ID --signature FILE.p7s``: the signature is verified over
  the document's exact bytes (:func:`~server.trust.signatures.verify_signed_contract`,
  which also checks the certificate like a login: path, validity, revocation,
  qualified); the signer's person id must be one of ``settings.lifecycle.operators``.
  The second confirmation by a *different* operator makes the wind-down effective at that
  moment (the injected clock): day 0. Every confirmation and every refusal is audited.
- From day 0 the ``wind-down`` job tells every subscriber (each mailbox with access, once)
  and the supervisory ministry (once). From day 30 return-receipt deliveries are refused
  (403 ``wind_down``); registered deliveries and all access go on until day 45. From day 45
  every request but health and readiness is refused (403 ``service_ceased``): the service
  is read-only for operators (the CLI), and the job closes every mailbox (``cessation``).

The phase is a function of the stored effective moment and the injected clock
(:class:`WindDownGate`); each node reads the effective moment at most every
``wind_down_check_seconds`` until there is one, and never again after (it cannot change).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum

from ..clock import Clock
from ..errors import CertificateRefused, Conflict, NotFound, Refused, SignatureRefused
from ..settings import Settings
from ..store.lifecycle import LifecycleStore
from ..store.wind_down import ACCESS_STATES, AlreadyConfirmed, WindDown, WindDownStore
from ..trust.certs import Loa
from ..trust.signatures import verify_signed_contract
from ..trust.validation import CertificateChecker

log = logging.getLogger(__name__)

Done = Callable[[int], Awaitable[None]]
#: R8.5: "public bodies cannot send formal court deliveries after day 30".
FORMAL_DAYS = 30
#: R8.5: "the service keeps running 45 days"; "recipients keep access until day 45".
ACCESS_DAYS = 45
#: Four-eyes: confirmations by this many different operators make it effective.
CONFIRMATIONS_NEEDED = 2
ACTOR = "system:wind-down"
#: From day 45, what a refused request is told (403 ``service_ceased``), and an operator.
CEASED = "The provider has ceased the service; it is read-only for operators (R8.5)."
CEASED_FOR_OPERATORS = "The provider has ceased the service; it is read-only (R8.5)."


class Phase(StrEnum):
    RUNNING = "running"  # no wind-down in effect (none, or still pending)
    ANNOUNCED = "announced"  # day 0 to day 30: everything still works
    NO_FORMAL = "no_formal_deliveries"  # day 30 to day 45: no return-receipt deliveries
    CEASED = "ceased"  # day 45 on: read-only, operators only


def formal_until(effective_at: datetime) -> datetime:
    return effective_at + timedelta(days=FORMAL_DAYS)


def access_until(effective_at: datetime) -> datetime:
    return effective_at + timedelta(days=ACCESS_DAYS)


def phase_at(effective_at: datetime | None, now: datetime) -> Phase:
    """Which phase ``now`` is in; each edge belongs to the later phase (day 30 refuses)."""
    if effective_at is None or now < effective_at:
        return Phase.RUNNING
    if now < formal_until(effective_at):
        return Phase.ANNOUNCED
    if now < access_until(effective_at):
        return Phase.NO_FORMAL
    return Phase.CEASED


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def announcement_document(
    wind_down_id: uuid.UUID, operator: str, at: datetime, domain: str
) -> bytes:
    """The exact bytes each confirming operator signs."""
    return (
        "VEP - napoved prenehanja opravljanja storitve / "
        "announcement of the cessation of the service (R8.5)\n"
        f"Številka / Id: {wind_down_id}\n"
        f"Storitev / Service: VEP ({domain})\n"
        f"Napovedal / Announced by: {operator}\n"
        f"Datum napovedi / Announced at: {at.isoformat()}\n"
        "Napoved začne veljati, ko jo s svojim kvalificiranim potrdilom potrdita dva različna "
        "operaterja. Od tedaj: obvestilo vsem naročnikom in ministrstvu; od 30. dne ni več "
        "pošiljk s povratnico; do 45. dne imajo vsi dostop; nato je storitev samo za branje, "
        "le za operaterje; dokazila in zapisi se predajo prevzemnemu ponudniku.\n"
        "The announcement takes effect when two different operators confirm it with their own "
        "qualified certificates. From then: every subscriber and the ministry are told; from "
        "day 30 no return-receipt deliveries; until day 45 everyone keeps access; then the "
        "service is read-only, for operators only; evidence and records go to the successor "
        "provider.\n"
    ).encode()


class WindDownGate:
    """The per-request question "which phase are we in?", cheap: no query once effective,
    at most one per ``check_seconds`` (real time, per node) before."""

    def __init__(self, store: WindDownStore, check_seconds: float) -> None:
        self._store = store
        self._every = check_seconds
        self._effective: datetime | None = None
        self._checked = -math.inf

    async def effective_at(self) -> datetime | None:
        if self._effective is not None:
            return self._effective
        now = time.monotonic()
        if now - self._checked < self._every:
            return None
        self._checked = now
        self._effective = await self._store.effective_at()
        return self._effective

    def forget(self) -> None:
        """Look again at the next question (this node confirmed it)."""
        self._checked = -math.inf

    async def phase(self, now: datetime) -> Phase:
        return phase_at(await self.effective_at(), now)

    async def refuse_formal(self, now: datetime) -> None:
        """R8.5, R5.6: from day 30 no return-receipt delivery is accepted."""
        if await self.phase(now) in (Phase.NO_FORMAL, Phase.CEASED):
            raise Refused(
                "The provider is winding down: return-receipt deliveries are no longer "
                "accepted (R8.5).",
                "wind_down",
            )

    async def refuse_new_contracts(self, now: datetime) -> None:
        """A provider that announced its cessation concludes no new contracts (R8.5; the
        issue is silent: a new subscriber would get a mailbox that closes in 45 days)."""
        if await self.phase(now) is not Phase.RUNNING:
            raise Refused(
                "The provider is winding down: no new mailboxes are opened (R8.5).",
                "wind_down",
            )

    async def refuse_if_ceased(self, now: datetime, detail: str = CEASED) -> None:
        """R8.5: from day 45 the service is read-only, for operators only (``detail``:
        the operators' CLI says it in its own words, :data:`CEASED_FOR_OPERATORS`)."""
        if await self.phase(now) is Phase.CEASED:
            raise Refused(detail, "service_ceased")


class WindDownService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: WindDownStore,
        lifecycle: LifecycleStore,
        checker: CertificateChecker,
        gate: WindDownGate,
    ) -> None:
        self._settings = settings
        self._rules = settings.lifecycle
        self._clock = clock
        self._store = store
        self._lifecycle = lifecycle
        self._checker = checker
        self.gate = gate

    async def status(self) -> WindDown | None:
        return await self._store.current()

    async def announce(self, operator: str) -> WindDown:
        """Record the pending announcement; it takes effect with two confirmations."""
        if len(set(self._rules.operators)) < CONFIRMATIONS_NEEDED:
            raise Conflict(
                "Four-eyes needs at least two operators in the settings (VEP_OPERATORS).",
                "operators_missing",
            )
        if self._rules.ministry_email is None:
            raise Conflict(
                "The ministry must be told (R8.5): set VEP_MINISTRY_EMAIL first.",
                "ministry_email_missing",
            )
        now = self._clock.now()
        await self.refuse_when_ceased(now)
        wind_down_id = uuid.uuid4()
        document = announcement_document(wind_down_id, operator, now, self._settings.mail_domain)
        if not await self._store.announce(wind_down_id, document, operator, now):
            existing = await self._store.current()
            raise Conflict(
                "A wind-down has been announced already.",
                "already_announced",
                wind_down_id=str(existing.wind_down_id) if existing else None,
            )
        announced = await self._store.current()
        assert announced is not None
        return announced

    async def confirm(self, wind_down_id: str, signature: bytes) -> tuple[WindDown, int]:
        """One operator's signed confirmation; returns the wind-down and how many
        operators have confirmed it. Effective at the second different operator."""
        current = await self._store.current()
        if current is None or str(current.wind_down_id) != wind_down_id.strip().lower():
            raise NotFound(f"No wind-down {wind_down_id} was announced.")
        now = self._clock.now()
        base = {"wind_down_id": str(current.wind_down_id)}
        try:
            checked = await verify_signed_contract(
                current.document, signature, self._checker, self._checker.now()
            )
        except (SignatureRefused, CertificateRefused) as exc:
            await self._store.refused(now, None, {**base, "reason": exc.reason})
            raise
        signer = checked.signer.facts
        refusal: Refused | Conflict | None = None
        count = 0
        effective: datetime | None = None
        if checked.format != "cades":
            refusal = Refused("Sign the announcement as detached CAdES (.p7s).", "signature_format")
        elif signer.person_id not in self._rules.operators:
            refusal = Refused(
                "The signer is not one of the operators in the settings (VEP_OPERATORS).",
                "not_operator",
            )
        elif checked.signer.loa not in (Loa.HIGH, Loa.SUBSTANTIAL):
            refusal = Refused("A qualified certificate must confirm.", "not_qualified")
        elif current.effective_at is not None:
            refusal = Conflict("The wind-down is effective already.", "already_effective")
        if refusal is None:
            try:
                count, effective = await self._store.confirm(
                    current.wind_down_id,
                    signer.person_id,
                    signer.fingerprint,
                    signature,
                    checked.as_record(),
                    now,
                    CONFIRMATIONS_NEEDED,
                )
            except AlreadyConfirmed:
                refusal = Conflict(
                    "This operator confirmed already: another operator must (four-eyes).",
                    "same_operator",
                )
        if refusal is not None:
            await self._store.refused(
                now,
                signer.person_id,
                {**base, "reason": refusal.reason, "cert_fingerprint": signer.fingerprint},
            )
            raise refusal
        if effective is not None:
            self.gate.forget()
        updated = await self._store.current()
        assert updated is not None
        return updated, count

    async def refuse_when_ceased(self, now: datetime) -> None:
        """Operators' changes are refused from day 45 too: the service is read-only."""
        await self.gate.refuse_if_ceased(now)

    async def run(self, now: datetime, done: Done) -> int:
        """The ``wind-down`` job: tell every subscriber and the ministry once; from day 45
        close every mailbox (cessation). Idempotent; each item its own transaction."""
        current = await self._store.current()
        if current is None or current.effective_at is None or now < current.effective_at:
            return 0
        effective = current.effective_at
        dates = {
            "formal_until": _day(formal_until(effective)),
            "access_until": _day(access_until(effective)),
        }
        told = 0
        for address in await self._store.unnotified_mailboxes(current.wind_down_id):
            if await self._store.notify_mailbox(current.wind_down_id, address, dates, now):
                told += 1
                await done(1)
        count = told
        ministry = self._rules.ministry_email
        if ministry is None:
            log.warning("wind-down: no ministry e-mail configured; the ministry is not told")
        elif await self._store.notify_ministry(
            current.wind_down_id,
            ministry,
            {
                "provider": f"VEP ({self._settings.mail_domain})",
                "effective_at": _day(effective),
                "mailboxes": str(current.mailboxes_notified + told),
                **dates,
            },
            now,
        ):
            count += 1
            await done(1)
        if now >= access_until(effective) and current.closed_at is None:
            for address in await self._store.open_mailboxes():
                changed = await self._lifecycle.transition(
                    address,
                    "closed",
                    now,
                    ACTOR,
                    "the provider ceased the service (R8.5)",
                    expect=ACCESS_STATES,
                    notice="closed",
                    closure_reason="cessation",
                )
                if changed is not None:
                    count += 1
                    await done(1)
            if not await self._store.open_mailboxes():
                await self._store.mark_closed(current.wind_down_id, now)
        return count
