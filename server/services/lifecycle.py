"""The mailbox lifecycle rules the jobs apply (R2.3, R8.3, R8.4, R8.6) and the operator's
read-only grant and the subscriber's signed closure that start some of them.

Every rule is judged at the ``now`` the job runs at (the injected clock), at its edge: a
temporary mailbox opened at T is suspended by a run at T + 8 days, not at T + 8 days − 1 s.
Each mailbox is its own transaction (:meth:`LifecycleStore.transition`), so a run killed
half-way leaves the others for the next run, and a second run changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

from ..clock import Clock
from ..errors import CertificateRefused, Conflict, InvalidFields, NotFound
from ..registry.business import BusinessRegister
from ..settings import Settings
from ..store.lifecycle import LifecycleStore
from ..trust.certs import Loa
from ..trust.validation import CertificateChecker

log = logging.getLogger(__name__)

Done = Callable[[int], Awaitable[None]]
#: R8.4: read-only access lasts at most this many months after termination.
READONLY_MAX_MONTHS = 3
#: A certificate check that could not decide (the OCSP responder is away) never closes.
_UNDECIDED = frozenset({"revocation_unknown"})


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, the day clamped to the month's end (31 Jan + 1 → 28/29 Feb)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def add_years(moment: datetime, years: int) -> datetime:
    return add_months(moment, 12 * years)


class LifecycleService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: LifecycleStore,
        checker: CertificateChecker,
        register: BusinessRegister,
    ) -> None:
        self._rules = settings.lifecycle
        self._clock = clock
        self._store = store
        self._checker = checker
        self._register = register

    async def suspend_temporary(self, now: datetime, done: Done) -> int:
        """R2.3: no paper contract 8 days after a temporary mailbox opened → suspended."""
        cutoff = now - timedelta(days=self._rules.temporary_mailbox_days)
        count = 0
        for address in await self._store.temporary_overdue(cutoff):
            changed = await self._store.transition(
                address,
                "suspended",
                now,
                "system:temporary-mailboxes",
                f"no signed paper contract within {self._rules.temporary_mailbox_days} days (R2.3)",
                expect=("temporary",),
                notice="suspended_no_contract",
            )
            if changed:
                count += 1
                await done(1)
        return count

    async def end_readonly_access(self, now: datetime, done: Done) -> int:
        """R8.4: read-only access after termination ends at its date."""
        count = 0
        for address in await self._store.readonly_ended(now):
            changed = await self._store.transition(
                address,
                "closed",
                now,
                "system:post-termination",
                "read-only access ended (R8.4)",
                expect=("readonly",),
                notice="readonly_ended",
            )
            if changed:
                count += 1
                await done(1)
        return count

    async def grant_readonly(self, address: str, until: datetime, operator: str) -> datetime:
        """R8.4: on written request, read-only access to a terminated mailbox until ``until``
        (at most 3 months after the termination)."""
        found = await self._store.closure_of(address)
        if found is None:
            raise NotFound(f"No mailbox {address}.")
        state, closed_at = found
        if state not in ("closed", "readonly") or closed_at is None:
            raise Conflict(
                f"{address} is {state}: read-only access is for terminated mailboxes.",
                "not_terminated",
            )
        now = self._clock.now()
        limit = add_months(closed_at, READONLY_MAX_MONTHS)
        if until > limit:
            raise InvalidFields(
                [{"field": "until", "reason": "beyond_three_months", "limit": limit.isoformat()}]
            )
        if until <= now:
            raise InvalidFields([{"field": "until", "reason": "in_the_past"}])
        changed = await self._store.transition(
            address,
            "readonly",
            now,
            f"operator:{operator}",
            f"read-only access until {until.isoformat()} on written request (R8.4)",
            expect=("closed", "readonly"),
            notice="readonly_granted",
            readonly_until=until,
        )
        if changed is None:
            raise Conflict(f"{address} changed state meanwhile; try again.", "state_changed")
        return until

    async def check_certificates(self, now: datetime, done: Done) -> int:
        """R8.3: no member with a valid qualified certificate → notice, then closure after
        the grace period; a legal entity gone from the business register → closed."""
        grace = timedelta(days=self._rules.certificate_grace_days)
        count = 0
        for holding in await self._store.holdings():
            actor = "system:certificates"
            if holding.registration_number is not None:
                entity = await self._register.lookup(holding.registration_number)
                if entity is None or not entity.active:  # struck off, or wound up
                    if await self._close(holding.address, now, actor, "entity_gone"):
                        count += 1
                        await done(1)
                    continue
            valid = await self._any_valid(holding.certificates)
            if valid is None:  # undecided (OCSP/CRL away): neither cleared nor counted on
                continue
            if valid:
                if holding.certificate_notice_at is not None:
                    await self._store.set_certificate_notice(holding.address, None, actor)
                continue
            if holding.certificate_notice_at is None:
                acted = await self._store.set_certificate_notice(holding.address, now, actor)
            elif now - holding.certificate_notice_at >= grace:
                acted = await self._close(holding.address, now, actor, "no_certificate")
            else:
                acted = False
            if acted:
                count += 1
                await done(1)
        return count

    async def _close(self, address: str, now: datetime, actor: str, reason: str) -> bool:
        why = {
            "entity_gone": "the legal entity is no longer in the business register (R8.3)",
            "no_certificate": "no member has a valid qualified certificate left (R8.3)",
        }[reason]
        changed = await self._store.transition(
            address,
            "closed",
            now,
            actor,
            why,
            expect=("temporary", "active", "suspended"),
            notice="closed",
            closure_reason=reason,
        )
        return changed is not None

    async def _any_valid(self, certificates: tuple[bytes, ...]) -> bool | None:
        """True when a certificate is valid, False when none is, None when none is known
        valid and one could not be decided (revocation data away). Found in review: an
        undecided check counted as valid, so one run during an outage cleared the notice,
        restarted the 30 days and sent the notice again."""
        undecided = False
        for der in certificates:
            try:
                check = await self._checker.check(der)
            except CertificateRefused as exc:
                if exc.reason in _UNDECIDED:
                    log.warning("certificates job: revocation undecided; nothing changed")
                    undecided = True
                continue
            if check.loa in (Loa.HIGH, Loa.SUBSTANTIAL):
                return True
        return None if undecided else False

    async def remove_personal_data(self, now: datetime, done: Done) -> int:
        """R8.6: personal data removed 10 years (setting) after the contract ended — the
        subscriber's, and the e-mail addresses of notices finished that long ago. Counts
        subscribers and notices."""
        cutoff = add_years(now, -self._rules.personal_data_years)
        count = 0
        for subscriber_id in await self._store.personal_data_due(cutoff):
            if await self._store.remove_personal_data(subscriber_id, now, "system:personal-data"):
                count += 1
                await done(1)
        if notices := await self._store.forget_notice_addresses(cutoff, now):
            count += notices
            await done(notices)
        return count


def parse_until(text: str) -> datetime:
    """``--until`` of the read-only grant: a date (end of that day, UTC) or an ISO time."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidFields([{"field": "until", "reason": "not_a_date"}]) from None
    if moment.tzinfo is None:
        raise InvalidFields([{"field": "until", "reason": "timezone_required"}])
    return moment
