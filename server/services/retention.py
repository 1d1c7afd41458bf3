"""R8.1: content is kept at least 3 months after receipt, then disposed of; evidence stays.

The ``retention`` job disposes of content whose every recipient received it at least the
retention period ago (a setting, 3 months or more). Earlier only on the subscriber's
explicit request (``DELETE /api/v1/deliveries/{id}/content``): a member with ``manage`` of
the sender's or a recipient's mailbox, and only once every recipient has the content
(downloaded it: ContentHandover) or refused it. Each disposal issues, per recipient, a
sealed and time-stamped ``ContentDisposition`` record — our own event type, in our
evidence XSD — which names only that recipient, as every later event does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from ..clock import Clock
from ..content.store import ContentStore
from ..errors import Conflict, NotFound, Refused
from ..evidence.model import EventName, Party
from ..evidence.seal import EvidenceSealer
from ..settings import Settings
from ..store.deliveries import DeliveryRow, DeliveryStore, NewEvidence
from ..store.mailboxes import MailboxStore
from ..store.retention import RetentionStore
from ..trust.validation import CertificateCheck
from .delivery_events import later_event, new_evidence
from .lifecycle import add_months
from .mailboxes import MailboxService, Need

log = logging.getLogger(__name__)

Done = Callable[[int], Awaitable[None]]
_REASONS = {
    "retention": "the retention period after receipt has ended (R8.1)",
    "subscriber_request": "deleted on the subscriber's explicit request (R8.1)",
    "cessation": "the provider ceased operation (R8.1, R8.5)",
}


class RetentionService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: RetentionStore,
        deliveries: DeliveryStore,
        mailboxes: MailboxStore,
        members: MailboxService,
        content: ContentStore,
        sealer: EvidenceSealer,
    ) -> None:
        self._months = settings.lifecycle.retention_months
        self._clock = clock
        self._store = store
        self._deliveries = deliveries
        self._mailboxes = mailboxes
        self._members = members
        self._content = content
        self._sealer = sealer

    async def purge_due(self, now: datetime, done: Done) -> int:
        """The ``retention`` job: every delivery past the period, each in its own claim."""
        cutoff = add_months(now, -self._months)
        count = 0
        while batch := await self._store.due(cutoff):
            progressed = False
            for delivery_id in batch:
                if await self._purge(delivery_id, now, "retention", "system:retention"):
                    count += 1
                    progressed = True
                    await done(1)
            if not progressed:  # the rest is claimed by another run right now
                break
        return count

    async def purge_on_request(self, delivery_id: str, check: CertificateCheck) -> datetime:
        """R8.1: the subscriber's explicit request, after the recipients have the content."""
        try:
            did = uuid.UUID(delivery_id)
        except ValueError:
            raise NotFound("No such delivery.") from None
        delivery = await self._deliveries.get(did)
        if delivery is None or not await self._may_manage(delivery, check):
            raise NotFound("No such delivery.")
        if delivery.content_purged_at is not None:
            raise Conflict("The content was already deleted.", "purged")
        waiting = [
            r.recipient_address
            for r in delivery.recipients
            if r.handed_over_at is None and r.state != "rejected"
        ]
        if waiting:
            raise Conflict(
                "The content can be deleted only after every recipient has it (R8.1).",
                "not_received",
                waiting=len(waiting),
            )
        now = self._clock.now()
        if not await self._purge(did, now, "subscriber_request", check.facts.person_id):
            raise Conflict("The content was already deleted.", "purged")
        return now

    async def _may_manage(self, delivery: DeliveryRow, check: CertificateCheck) -> bool:
        addresses = [delivery.sender_address] + [r.recipient_address for r in delivery.recipients]
        inactive = None
        for address in addresses:
            try:
                access = await self._members.authorize(address, check, Need.MANAGE)
            except Refused:
                continue
            if access.mailbox.state == "active":
                return True
            inactive = access.mailbox.state
        if inactive is not None:
            # R8.4: read-only access after termination deletes nothing
            raise Refused(
                f"The mailbox is {inactive}; it cannot delete content.",
                "mailbox_not_active",
                state=inactive,
            )
        return False

    async def _purge(self, delivery_id: uuid.UUID, now: datetime, reason: str, actor: str) -> bool:
        async def records() -> list[NewEvidence]:
            delivery = await self._deliveries.get(delivery_id)
            assert delivery is not None
            return await self._records(delivery, now, reason)

        locators = await self._store.purge(delivery_id, now, reason, actor, records)
        if locators is None:
            return False
        for locator in locators:
            try:
                await self._content.delete(locator)
            except OSError:
                # the sweep removes it: no live row refers to it any more
                log.warning("content file not deleted after purge; left to the sweep")
        return True

    async def _records(
        self, delivery: DeliveryRow, now: datetime, reason: str
    ) -> list[NewEvidence]:
        sender = await self._mailboxes.get(delivery.sender_address)
        sender_name = sender.display_name if sender else delivery.sender_address
        out = []
        for r in delivery.recipients:
            mailbox = await self._mailboxes.get(r.recipient_address)
            party = Party(
                mailbox.display_name if mailbox else r.recipient_address, r.recipient_address
            )
            sealed = await self._sealer.seal(
                later_event(
                    delivery,
                    EventName.CONTENT_DISPOSITION,
                    sender_name,
                    party,
                    now,
                    reasons=((reason, _REASONS[reason]),),
                )
            )
            out.append(new_evidence(sealed, r.recipient_address))
        return out
