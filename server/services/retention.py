"""R8.1: content is kept at least 3 months after receipt, then disposed of; evidence stays.

The ``retention`` job disposes of content whose every recipient received it at least the
retention period ago (a setting, 3 months or more). Earlier only on the subscriber's
explicit request (``DELETE /api/v1/deliveries/{id}/content``), and for that subscriber's
mailbox only: a member with ``manage`` of the sender's mailbox once every recipient has the
content (downloaded it: ContentHandover) or refused it, of a recipient's mailbox once that
recipient has it. The one sealed copy is disposed of when the sender and every recipient
have asked — one party's request never takes the others' copy. Each disposal issues, per
recipient, a sealed and time-stamped ``ContentDisposition`` record — our own event type, in
our evidence XSD — which names only that recipient, as every later event does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from ..clock import Clock
from ..content.store import ContentStore
from ..errors import Conflict, NotFound, Refused
from ..evidence.model import EventName, Party
from ..evidence.seal import EvidenceSealer
from ..settings import Settings
from ..store.deliveries import DeliveryRow, DeliveryStore, NewEvidence, RecipientRow
from ..store.mailboxes import MailboxStore
from ..store.retention import AlreadyDeleted, ContentGone, RetentionStore
from ..trust.validation import CertificateCheck
from .delivery_events import RELEASED, later_event, new_evidence
from .fields import mailbox_address
from .lifecycle import add_months
from .mailboxes import MailboxService, Need

log = logging.getLogger(__name__)

Done = Callable[[int], Awaitable[None]]
_REASONS = {
    "retention": "the retention period after receipt has ended (R8.1)",
    "subscriber_request": "deleted on the explicit request of the sender and of every "
    "recipient (R8.1)",
    "cessation": "the provider ceased operation (R8.1, R8.5)",
}


@dataclass(frozen=True)
class Deletion:
    """A party's early deletion (R8.1): whose copy, when, and when the content itself was
    disposed of (None while another party keeps it)."""

    mailbox: str
    deleted_at: datetime
    content_purged_at: datetime | None


def _has_it(row: RecipientRow) -> bool:
    """The recipient downloaded the content (ContentHandover) or refused it."""
    return row.handed_over_at is not None or row.state == "rejected"


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
        """The ``retention`` job: every delivery past the period, each in its own claim.

        Which deliveries are due is judged as of ``now`` (a scheduled run's slot, for exact
        day counts); each disposal is recorded — its ContentDisposition evidence, the purge
        time, the audit record — at the moment it happens. Found in review: a run that
        caught up hours late (a node restarted) sealed evidence of a disposal at the slot,
        before a handover that had happened in between."""
        cutoff = add_months(now, -self._months)
        count = 0
        while batch := await self._store.due(cutoff):
            progressed = False
            for delivery_id in batch:
                at = max(now, self._clock.now())
                if await self._purge(delivery_id, at, "retention", "system:retention"):
                    count += 1
                    progressed = True
                    await done(1)
            if not progressed:  # the rest is claimed by another run right now
                break
        return count

    async def purge_on_request(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None = None
    ) -> Deletion:
        """R8.1: a subscriber's explicit request to delete the content from its mailbox
        (``mailbox`` names the party when the caller manages several), after it has the
        content; the copy goes once every party asked."""
        try:
            did = uuid.UUID(delivery_id)
        except ValueError:
            raise NotFound("No such delivery.") from None
        delivery = await self._deliveries.get(did)
        if delivery is None:
            raise NotFound("No such delivery.")
        party = await self._managed_party(delivery, check, mailbox)
        if delivery.content_purged_at is not None:
            raise Conflict("The content was already deleted.", "purged")
        if party == delivery.sender_address:
            waiting = [r for r in delivery.recipients if not _has_it(r)]
        else:
            row = delivery.recipient(party)
            waiting = [row] if row is not None and not _has_it(row) else []
        if waiting:
            raise Conflict(
                "The content can be deleted only after the recipient has it (R8.1).",
                "not_received",
                waiting=len(waiting),
            )
        now = self._clock.now()
        as_sender = party == delivery.sender_address

        async def records() -> list[NewEvidence]:
            return await self._records(delivery, now, "subscriber_request")

        try:
            locators = await self._store.delete_for_party(
                did, party, as_sender, now, check.facts.person_id, records
            )
        except ContentGone:
            raise Conflict("The content was already deleted.", "purged") from None
        except AlreadyDeleted:
            raise Conflict(
                "The content was already deleted from this mailbox.", "deleted"
            ) from None
        if locators is not None:
            await self._delete_files(locators)
        return Deletion(party, now, now if locators is not None else None)

    async def _managed_party(
        self, delivery: DeliveryRow, check: CertificateCheck, mailbox: str | None
    ) -> str:
        """The party whose copy the caller deletes: ``mailbox`` when named, else the first
        recipient mailbox they manage, else the sender's (as :meth:`view` reads)."""
        parties = [r.recipient_address for r in delivery.recipients]
        parties.append(delivery.sender_address)
        if mailbox is not None:
            parties = [p for p in parties if p == mailbox_address(mailbox)]
        inactive = None
        for address in parties:
            try:
                access = await self._members.authorize(address, check, Need.MANAGE)
            except Refused:
                continue
            if access.mailbox.state == "active":
                return address
            inactive = access.mailbox.state
        if inactive is not None:
            # R8.4: read-only access after termination deletes nothing
            raise Refused(
                f"The mailbox is {inactive}; it cannot delete content.",
                "mailbox_not_active",
                state=inactive,
            )
        raise NotFound("No such delivery.")

    async def _purge(self, delivery_id: uuid.UUID, now: datetime, reason: str, actor: str) -> bool:
        async def records() -> list[NewEvidence]:
            delivery = await self._deliveries.get(delivery_id)
            assert delivery is not None
            return await self._records(delivery, now, reason)

        locators = await self._store.purge(delivery_id, now, reason, actor, records)
        if locators is None:
            return False
        await self._delete_files(locators)
        return True

    async def _delete_files(self, locators: list[str]) -> None:
        for locator in locators:
            try:
                await self._content.delete(locator)
            except OSError:
                # the sweep removes it: no live row refers to it any more
                log.warning("content file not deleted after purge; left to the sweep")

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
                    released=r.state in RELEASED,
                )
            )
            out.append(new_evidence(sealed, r.recipient_address))
        return out
