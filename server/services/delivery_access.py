"""Reading deliveries: who may see what (R5.3, R5.5, R6.1, R6.3).

A delivery is visible to members with ``read`` of the sender's mailbox and of each
recipient's mailbox, and to nobody else (404, so its existence does not leak); one who
reads several of them reads as one party at a time (:meth:`DeliveryAccessService.view`). Before a
return-receipt delivery is accepted (or deemed served) the recipient sees the sender,
subject and dates, never the message or the content. The recipient's first download of
any part issues ``ContentHandover``, once.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ..clock import Clock
from ..content.files import StoredPart
from ..content.keys import DataKey, KeyUnwrapError, WrappedKey
from ..content.message import MessageUnreadable, is_sealed, open_message
from ..content.store import ContentStore
from ..content.stream import ContentError
from ..errors import BadRequest, ContentUnavailable, NotFound, Refused
from ..evidence.model import CertRef, EventName, Party
from ..evidence.seal import EvidenceSealer
from ..receipts import ReceiptIssuer
from ..store.deliveries import DeliveryRow, DeliveryStore, EvidenceRow, ListedDelivery, PartRow
from ..store.mailboxes import MailboxStore
from ..trust.validation import CertificateCheck
from .delivery_events import RELEASED, later_event, new_evidence, stored_part
from .fields import mailbox_address
from .mailboxes import Access, MailboxService, Need

PAGE = 50
UNAVAILABLE = "The stored content cannot be opened; the operator has been alerted."
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    """A delivery as one caller may see it."""

    delivery: DeliveryRow
    as_sender: bool
    recipient: str | None  # the recipient mailbox the caller reads for, if any
    content_visible: bool
    #: False for a member who may only *accept* for the recipient mailbox (R3.2): they
    #: see what a recipient sees before acceptance (R5.3) — never the content, the
    #: message or the evidence, which need ``read``.
    reader: bool = True
    #: The caller's membership of ``recipient`` (what acceptance decides on, R5.3).
    access: Access | None = None


def encode_cursor(at: datetime, delivery_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{delivery_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, did = raw.split("|", 1)
        # in UTC here: a time at the edge of the calendar would overflow in asyncpg (500)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has its offset")
        return moment.astimezone(UTC), uuid.UUID(did)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise BadRequest("The `after` cursor is not valid.", "bad_cursor") from None


class DeliveryAccessService:
    def __init__(
        self,
        clock: Clock,
        deliveries: DeliveryStore,
        mailboxes: MailboxStore,
        members: MailboxService,
        content: ContentStore,
        sealer: EvidenceSealer,
        receipts: ReceiptIssuer | None = None,
    ) -> None:
        self._clock = clock
        self._deliveries = deliveries
        self._mailboxes = mailboxes
        self._members = members
        self._content = content
        self._sealer = sealer
        self._receipts = receipts

    async def listing(
        self, access: Access, box: str, after: str | None
    ) -> tuple[list[ListedDelivery], str | None]:
        """Inbox or outbox, newest first, keyset-paginated (``after`` = the last cursor).
        A member who may only accept (R3.2) lists the inbox's return-receipt deliveries
        waiting for acceptance: what they are there to act on, in its pre-acceptance form."""
        waiting_only = box == "inbox" and not access.has("read") and access.has("accept")
        if not access.has("read") and not waiting_only:
            raise Refused(
                "This needs the read permission.", "permission_required", permission="read"
            )
        cursor = decode_cursor(after)
        address = access.mailbox.address
        if box == "inbox":
            rows = await self._deliveries.inbox(address, cursor, PAGE + 1, waiting_only)
        else:
            rows = await self._deliveries.outbox(address, cursor, PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        next_cursor = encode_cursor(rows[-1].at, rows[-1].delivery_id) if more and rows else None
        return rows, next_cursor

    async def _member(self, address: str, check: CertificateCheck) -> Access | None:
        try:
            return await self._members.authorize(address, check, Need.MEMBER)
        except Refused:
            return None

    async def view(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None = None
    ) -> View:
        """The delivery as the caller reads it: as ``mailbox`` when named (the sender or a
        recipient, and a mailbox the caller reads), else as the first recipient mailbox
        they read, else as the sender's member. Recipients first: a person who also reads
        the sender's mailbox (a clerk served by their own employer) is still served as
        the recipient (R5.3) — no content before acceptance, their own vročilnica, the
        handover recorded — and reads as the sender only by naming it. A member who may
        only accept for a recipient of a return-receipt delivery waiting for acceptance
        (R3.2) gets that recipient's pre-acceptance view, when they read no party: without
        it the ``accept`` permission could accept nothing (found in review)."""
        try:
            did = uuid.UUID(delivery_id)
        except ValueError:
            raise NotFound("No such delivery.") from None
        delivery = await self._deliveries.get(did)
        if delivery is None:
            raise NotFound("No such delivery.")
        parties = [r.recipient_address for r in delivery.recipients]
        parties.append(delivery.sender_address)
        if mailbox is not None:
            parties = [p for p in parties if p == mailbox_address(mailbox)]
        mine = {a.address for a in await self._members.accessible(check)}
        acceptor: View | None = None
        for address in parties:
            if address not in mine or (access := await self._member(address, check)) is None:
                continue
            if not access.has("read"):
                if acceptor is None and self._may_accept(delivery, address, access):
                    acceptor = View(delivery, False, address, False, False, access)
                continue
            if address == delivery.sender_address:
                return View(delivery, True, None, True)
            row = delivery.recipient(address)
            released = row is not None and row.state in RELEASED
            return View(delivery, False, address, released, True, access)
        if acceptor is not None:
            return acceptor
        raise NotFound("No such delivery.")

    @staticmethod
    def _may_accept(delivery: DeliveryRow, address: str, access: Access) -> bool:
        # only while it waits: what was decided is the readers' business (least privilege)
        row = delivery.recipient(address)
        return (
            access.has("accept")
            and delivery.kind == "return_receipt"
            and row is not None
            and row.state == "awaiting_acceptance"
        )

    @staticmethod
    def _require_reader(view: View) -> None:
        if not view.reader:
            raise Refused(
                "This needs the read permission.", "permission_required", permission="read"
            )

    async def download(
        self, delivery_id: str, part_no: int, check: CertificateCheck, mailbox: str | None = None
    ) -> tuple[PartRow, AsyncIterator[bytes]]:
        view = await self.view(delivery_id, check, mailbox)
        self._require_reader(view)
        delivery = view.delivery
        if delivery.content_purged_at is not None:
            raise Refused("The content was deleted after its retention period.", "purged")
        if delivery.deleted_for(view.recipient) is not None:
            raise Refused(
                "The content was deleted from this mailbox at its subscriber's request (R8.1).",
                "deleted",
            )
        if not view.content_visible:
            raise Refused(
                "Accept the delivery first: sign the return receipt (R5.3).", "not_accepted"
            )
        part = next((p for p in delivery.parts if p.part_no == part_no), None)
        if part is None:
            raise NotFound("No such part.")
        key = self._data_key(delivery)
        stored = stored_part(part)
        row = delivery.recipient(view.recipient) if view.recipient is not None else None
        if row is not None and row.handed_over_at is None:
            # ContentHandover says the recipient was given the content: seal it only once
            # the whole part has opened and matched its hash (a full pass, first time only)
            async for _ in self._opened(stored, key, delivery):
                pass
            await self._handover(delivery, row.recipient_address, check)
        return part, self._opened(stored, key, delivery)

    async def _opened(
        self, stored: StoredPart, key: DataKey, delivery: DeliveryRow
    ) -> AsyncIterator[bytes]:
        """The part's plaintext; a part that fails to open is :class:`ContentUnavailable`
        (no plaintext of a failing chunk is ever yielded)."""
        try:
            async for chunk in self._content.read(stored, key):
                yield chunk
        except ContentError as exc:
            log.error(
                "stored content does not open",
                extra={"delivery_id": str(delivery.delivery_id), "error": type(exc).__name__},
            )
            raise ContentUnavailable(UNAVAILABLE) from None

    async def _handover(
        self, delivery: DeliveryRow, recipient: str, check: CertificateCheck
    ) -> None:
        row = delivery.recipient(recipient)
        if row is None or row.handed_over_at is not None:
            return
        now = self._clock.now()
        mailbox = await self._mailboxes.get(recipient)
        sender = await self._mailboxes.get(delivery.sender_address)
        sealed = await self._sealer.seal(
            later_event(
                delivery,
                EventName.CONTENT_HANDOVER,
                sender.display_name if sender else delivery.sender_address,
                Party(
                    mailbox.display_name if mailbox else recipient,
                    recipient,
                    CertRef.from_facts(check.facts),
                ),
                now,
                released=True,  # the content is being handed over
            )
        )
        await self._deliveries.record_handover(
            delivery.delivery_id,
            recipient,
            now,
            check.facts.person_id,
            new_evidence(sealed, recipient),
        )

    def message_of(self, delivery: DeliveryRow) -> str:
        """The delivery's message in clear (R5.5: kept sealed under its data key; a row
        written before that keeps its clear text). For a view whose content is visible."""
        if not is_sealed(delivery.message):
            return delivery.message
        key = self._data_key(delivery)
        try:
            return open_message(key, delivery.message)
        except MessageUnreadable:
            log.error("message does not open", extra={"delivery_id": str(delivery.delivery_id)})
            raise ContentUnavailable(UNAVAILABLE) from None

    def _data_key(self, delivery: DeliveryRow) -> DataKey:
        """The delivery's data key; one that does not unwrap is :class:`ContentUnavailable`."""
        try:
            return self._content.data_key(
                WrappedKey(delivery.key_version, delivery.wrapped_key), str(delivery.delivery_id)
            )
        except KeyUnwrapError:
            log.error(
                "content key does not unwrap", extra={"delivery_id": str(delivery.delivery_id)}
            )
            raise ContentUnavailable(UNAVAILABLE) from None

    async def evidence_list(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None = None
    ) -> list[EvidenceRow]:
        view = await self.view(delivery_id, check, mailbox)
        self._require_reader(view)
        rows = await self._deliveries.evidence(view.delivery.delivery_id)
        if view.as_sender:
            return rows
        # a recipient sees the evidence about them only: SubmissionAcceptance is the
        # sender's and names every recipient (found in review)
        return [r for r in rows if r.recipient_address == view.recipient]

    async def evidence_pdf(
        self,
        delivery_id: str,
        evidence_id: str,
        check: CertificateCheck,
        mailbox: str | None = None,
    ) -> tuple[EvidenceRow, bytes]:
        """R6.3: the human-readable receipt of one evidence, PAdES-sealed by the provider."""
        row = await self.evidence_item(delivery_id, evidence_id, check, mailbox)
        if self._receipts is None:
            raise Refused("PDF receipts are not configured on this node.", "unavailable")
        return row, await self._receipts.receipt_for(row.xml)

    async def evidence_item(
        self,
        delivery_id: str,
        evidence_id: str,
        check: CertificateCheck,
        mailbox: str | None = None,
    ) -> EvidenceRow:
        rows = await self.evidence_list(delivery_id, check, mailbox)
        found = next((r for r in rows if str(r.evidence_id) == evidence_id), None)
        if found is None:
            raise NotFound("No such evidence.")
        return found
