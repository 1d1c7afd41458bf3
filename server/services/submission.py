"""Submitting a delivery (R5.1, R5.2, R5.4–R5.7, R6.1).

The body is streamed part by part into the encrypted content store; nothing is held whole
in memory. Only when every part is fsynced and the first evidence is sealed does one
transaction commit the delivery, its recipients, the evidence, the notifications and the
audit record — so the 201 means all of it is durable, and any refusal (or a client that
goes away before the commit) deletes the files it wrote and leaves no row. A commit whose
answer is lost keeps its files and says so (503 ``outcome_unknown``).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from cryptography import x509

from ..clock import Clock
from ..content.keys import DataKey, WrappedKey
from ..content.message import seal_message
from ..content.store import ContentStore
from ..errors import (
    BadRequest,
    Conflict,
    InvalidFields,
    OutcomeUncertain,
    PayloadTooLarge,
    Refused,
    UploadTimedOut,
)
from ..evidence.model import CertRef, ContentPart, EventName, EvidenceEvent, Party
from ..evidence.seal import EvidenceSealer, SealedEvidence
from ..settings import Settings
from ..store.deliveries import DeliveryStore, NewEvidence, PartRow
from ..store.submission_writer import OutcomeUnknown
from ..store.submissions import NewSubmission, RecipientInactive, SenderRefused
from ..store.text import recordable
from ..validate import validate
from .delivery_events import new_evidence, stored_part
from .directory import Lookups
from .mailboxes import Access
from .submission_metadata import (
    checked_metadata,
    file_name_refused,
    read_all,
    read_metadata,
    recipient_addresses,
)

#: Authorises the sender, reading the named recipients' mailboxes with it.
Authorize = Callable[[Sequence[str]], Awaitable[Access]]

if TYPE_CHECKING:
    from .wind_down import WindDownGate

#: Refusals that tell whether an address is a mailbox (R4.3 counts them as lookups).
_EXISTENCE = frozenset({"unknown_recipient", "recipient_not_active"})
#: A signed part is read back to verify its signature; larger signed parts are refused.
MAX_SIGNED_PART = 20 * 1024 * 1024
MAX_SIGNATURE = 1024 * 1024


@dataclass
class IncomingPart:
    """One multipart part as the service sees it (the HTTP layer adapts aiohttp's reader)."""

    field: str
    filename: str | None
    media_type: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class Submitted:
    delivery_id: uuid.UUID
    kind: str
    recipients: tuple[str, ...]
    evidence: tuple[SealedEvidence, ...]


class SubmissionService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        deliveries: DeliveryStore,
        content: ContentStore,
        sealer: EvidenceSealer,
        anchors: Sequence[x509.Certificate] = (),
        wind_down: WindDownGate | None = None,
        lookups: Lookups | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._deliveries = deliveries
        self._content = content
        self._sealer = sealer
        self._anchors = list(anchors)
        self._wind_down = wind_down
        self._lookups = lookups

    async def _metadata(self, access: Access, body: dict[str, Any]) -> dict[str, Any]:
        try:
            meta = checked_metadata(access, body)
        except InvalidFields as exc:
            told = any(e.get("reason") in _EXISTENCE for e in exc.errors)
            if told and self._lookups is not None:
                # R4.3: it told, of every address named, whether it is a mailbox in service
                # (found in review: counted once, it tested 50 addresses for one lookup)
                named = body.get("to")
                count = len({str(a) for a in named}) if isinstance(named, list) else 1
                await self._lookups(access.check, count)
            raise
        if meta["kind"] == "return_receipt" and not access.mailbox.public_body:
            raise Refused(
                "Only a public body may send a return-receipt delivery (R5.2).",
                "not_public_body",
            )
        if meta["kind"] == "return_receipt" and self._wind_down is not None:
            await self._wind_down.refuse_formal(self._clock.now())  # R8.5, R5.6: day 30
        return meta

    @staticmethod
    def _may_send(access: Access) -> None:
        if not access.has("send"):
            raise Refused(
                "This needs the send permission.", "permission_required", permission="send"
            )
        if access.mailbox.state != "active":
            raise Conflict(
                f"The mailbox is {access.mailbox.state}; it cannot send (R5.6).",
                "mailbox_not_active",
                state=access.mailbox.state,
            )

    async def submit(self, authorize: Authorize, parts: AsyncIterator[IncomingPart]) -> Submitted:
        """Authorise the sender (``authorize``, given the recipients' addresses to read
        with it), then take the delivery. The metadata part is read first for those
        addresses (:mod:`.submission_metadata`), but a refusal of the sender still comes
        before any complaint about the body."""
        try:
            first = await anext(parts, None)
            body = await read_metadata(first)
        except BadRequest:
            self._may_send(await authorize(()))
            raise
        access = await authorize(recipient_addresses(body.get("to")))
        self._may_send(access)
        meta = await self._metadata(access, body)
        delivery_id = uuid.uuid4()
        data_key, wrapped = self._content.new_data_key(str(delivery_id))
        meta = {**meta, "message": seal_message(data_key, meta["message"])}  # R5.5
        stored: list[PartRow] = []
        committing = asyncio.Event()
        settings = self._settings
        try:
            try:
                async with asyncio.timeout(settings.upload_timeout_seconds):
                    await self._receive(parts, str(delivery_id), data_key, stored)
            except TimeoutError:
                raise UploadTimedOut(settings.upload_timeout_seconds) from None
            if not stored:
                raise InvalidFields([{"field": "file", "reason": "required"}])
            return await self._commit(access, meta, delivery_id, wrapped, stored, committing)
        except BaseException:
            # a refusal, a failure or a client that went away: no file stays behind —
            # unless the COMMIT was sent (see _commit)
            if not committing.is_set():
                await asyncio.shield(self._discard(stored))
            raise

    async def _receive(
        self,
        parts: AsyncIterator[IncomingPart],
        delivery_id: str,
        data_key: DataKey,
        stored: list[PartRow],
    ) -> None:
        """Write each file part to the content store (appended to ``stored`` as it is
        written, so that a failure can remove it) and verify its sender signature."""
        settings = self._settings
        remaining = settings.max_delivery_bytes
        async for part in parts:
            if part.field == "signature":  # a detached CAdES over the file before it
                if not stored or stored[-1].sender_signature is not None:
                    raise BadRequest(
                        "A `signature` part must follow its `file` part.",
                        "signature_without_file",
                    )
                signature = await read_all(part.chunks, MAX_SIGNATURE, "signature")
                remaining -= len(signature)  # signatures count in the delivery size
                if remaining < 0:
                    raise PayloadTooLarge(settings.max_delivery_bytes)
                stored[-1] = await self._verified(data_key, stored[-1], signature)
                continue
            if part.field != "file":
                raise BadRequest(f"Unknown part `{part.field}`.", "unknown_part")
            if len(stored) >= settings.max_delivery_parts:
                raise InvalidFields([{"field": "file", "reason": "too_many_parts"}])
            media_type = part.media_type.split(";")[0].strip().lower()
            if media_type not in settings.allowed_content_types:
                raise InvalidFields(
                    [{"field": f"file[{len(stored)}]", "reason": "type_not_allowed"}]
                )
            if part.filename is not None and file_name_refused(part.filename):
                raise InvalidFields([{"field": f"file[{len(stored)}]", "reason": "bad_filename"}])
            written = await self._content.write(delivery_id, data_key, part.chunks, remaining)
            remaining -= written.size
            row = PartRow(
                part_no=len(stored),
                name=(part.filename or f"part-{len(stored)}")[:200],
                media_type=media_type,
                size=written.size,
                sha256=written.sha256,
                locator=written.locator,
                ciphertext_size=written.ciphertext_size,
                sender_signature=None,
                inline=written.inline,
            )
            stored.append(row)
            if media_type == "application/pdf" and await self._has_pdf_signature(data_key, row):
                stored[-1] = await self._verified(data_key, row, None)

    async def _plaintext(self, data_key: DataKey, row: PartRow) -> bytes:
        if row.size > MAX_SIGNED_PART:
            field = f"file[{row.part_no}]"
            raise InvalidFields([{"field": field, "reason": "signed_part_too_large"}])
        content = self._content.read(stored_part(row), data_key)
        return b"".join([chunk async for chunk in content])

    async def _has_pdf_signature(self, data_key: DataKey, row: PartRow) -> bool:
        if row.size > MAX_SIGNED_PART:
            return False  # too large to check here: kept as a document without a claim
        return b"/ByteRange" in await self._plaintext(data_key, row)

    async def _verified(self, data_key: DataKey, row: PartRow, signature: bytes | None) -> PartRow:
        """R5.1: verify the sender's signature (PAdES inside the PDF, or a detached CAdES
        part after the file) and record the result; one that does not verify refuses the
        delivery (422)."""
        document = await self._plaintext(data_key, row)
        if signature is None:
            report = await validate(document, None, self._anchors)
        else:
            report = await validate(signature, document, self._anchors)
        if signature is None and not report.signatures:
            return row  # "/ByteRange" was only text: a PDF without a signature
        if not report.intact:
            field = f"file[{row.part_no}]"
            raise InvalidFields([{"field": field, "reason": "sender_signature_invalid"}])
        summary = report.as_json()
        signers = [
            {
                "subject": s["signer"]["subject"],
                "qualified": s["qualified"],
                "qscd": s["qscd"],
                "signing_time": s["signing_time"],
                "trusted": s.get("trusted"),
            }
            for s in summary["signatures"]
        ]
        return replace(
            row,
            # a signer's name may hold what PostgreSQL refuses (a NUL in a name that only
            # asn1crypto reads): kept visibly, not a 500 after the whole upload
            sender_signature=recordable(
                {"format": summary["input_kind"], "intact": True, "signers": signers}
            ),
        )

    async def _discard(self, stored: list[PartRow]) -> None:
        for part in stored:
            if part.inline is None:  # an inline part was written nowhere
                await self._content.delete(part.locator)

    async def _commit(
        self,
        access: Access,
        meta: dict[str, Any],
        delivery_id: uuid.UUID,
        wrapped: WrappedKey,
        stored: list[PartRow],
        committing: asyncio.Event,
    ) -> Submitted:
        now = self._clock.now()
        kind: str = meta["kind"]
        sender = Party(
            access.mailbox.display_name,
            access.mailbox.address,
            CertRef.from_facts(access.check.facts),
        )
        # Whether each mailbox is still active is checked again by the INSERT (R5.6).
        recipients = [Party(meta["names"][address], address) for address in meta["to"]]
        content = tuple(ContentPart(p.name, p.media_type, p.size, p.sha256) for p in stored)
        # what the recipients' evidence names before a return receipt's content is
        # theirs: the parts by digest only (R5.3); the sender's names them
        unreleased = tuple(p.withheld() for p in content) if kind == "return_receipt" else content
        subject_sha = hashlib.sha256(meta["subject"].encode("utf-8")).hexdigest()

        def event(
            name: EventName, to: tuple[Party, ...], parts: tuple[ContentPart, ...]
        ) -> EvidenceEvent:
            return EvidenceEvent(
                event=name,
                evidence_id=str(uuid.uuid4()),
                delivery_id=str(delivery_id),
                event_time=now,
                submission_time=now,
                sender=sender,
                recipients=to,
                parts=parts,
                subject_sha256=subject_sha,
                kind=kind,
            )

        plan: list[tuple[EvidenceEvent, str | None]] = [
            (event(EventName.SUBMISSION_ACCEPTANCE, tuple(recipients), content), None)
        ]
        for party in recipients:
            to = (party,)
            plan.append((event(EventName.CONTENT_CONSIGNMENT, to, unreleased), party.mailbox))
            if kind == "return_receipt":
                notice = event(EventName.NOTIFICATION_FOR_ACCEPTANCE, to, unreleased)
                plan.append((notice, party.mailbox))
        sealed = await self._sealer.seal_all([ev for ev, _ in plan])
        evidence = [new_evidence(s, r) for s, (_, r) in zip(sealed, plan, strict=True)]
        # From the moment the submission is handed to the writer its outcome may be
        # unknown (a lost answer, a cancelled task): the files must stay, or a committed
        # delivery could lose its content. Orphans, if it did not commit, are the content
        # sweep's. A refusal means nothing was written, and the files go.
        committing.set()
        try:
            await self._write(access, meta, delivery_id, wrapped, stored, evidence, now)
        except (asyncpg.PostgresError, RecipientInactive, Conflict, Refused):
            committing.clear()  # the writer raises these only for what did not commit
            raise
        except OutcomeUnknown:
            raise OutcomeUncertain(
                "The delivery may or may not have been committed: look it up before you "
                "send it again.",
                delivery_id=str(delivery_id),
                href=f"/api/v1/deliveries/{delivery_id}",
            ) from None
        return Submitted(delivery_id, kind, tuple(meta["to"]), tuple(sealed))

    async def _write(
        self,
        access: Access,
        meta: dict[str, Any],
        delivery_id: uuid.UUID,
        wrapped: WrappedKey,
        stored: list[PartRow],
        evidence: list[NewEvidence],
        now: datetime,
    ) -> None:
        """The submission's rows, evidence, notifications (R5.4: a hint by e-mail, no
        content) and audit record, committed together."""
        kind: str = meta["kind"]
        try:
            await self._deliveries.submit(
                NewSubmission(
                    delivery_id=delivery_id,
                    kind=kind,
                    sender_address=access.mailbox.address,
                    sender_person_id=access.actor,
                    sender_fingerprint=access.check.facts.fingerprint,
                    subject=meta["subject"],
                    message=meta["message"],
                    reference=meta["reference"],
                    submitted_at=now,
                    wrapped_key=wrapped.blob,
                    key_version=wrapped.version,
                    parts=stored,
                    recipients=meta["to"],
                    awaiting_acceptance=kind == "return_receipt",
                    evidence=evidence,
                    notify_kind="delivery_waiting",
                )
            )
        except RecipientInactive as exc:  # changed during the upload
            raise Conflict(
                f"{exc.address} can no longer receive (R5.6).", "recipient_not_active"
            ) from None
        except SenderRefused:  # changed during the upload
            raise Refused(
                "You may no longer send from this mailbox: your membership or its state "
                "changed during the upload (R3.2, R5.6).",
                "sender_not_allowed",
            ) from None
