"""Return receipts — the vročilnica — and deemed service (R5.3, ZUP art. 86, ZPP 141.a).

A return-receipt delivery is opened only by a recipient logged in at LoA high (QSCD) with
the ``accept`` permission, who signs the vročilnica with that same certificate (detached
CAdES over the exact bytes issued). Signing one vročilnica accepts every return-receipt
delivery then waiting in the mailbox, all listed in it (ZPP 141.a(6)). With
``receipt_signature = "login"`` an explicit acceptance by the QSCD-authenticated session is
enough (the literal rule of the VEP.SI terms) and the evidence records that. After 15 days
without acceptance the delivery is deemed served: ``AcceptanceRejectionExpiry`` evidence,
the sender is told, the content is released.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lxml import etree

from ..clock import Clock
from ..errors import Conflict, NotFound, Refused
from ..evidence.model import CertRef, EventName, Party
from ..evidence.seal import EvidenceSealer
from ..settings import Settings
from ..store.contacts import ContactStore
from ..store.deliveries import DeliveryRow, DeliveryStore, NewEvidence, ReceiptUsed
from ..store.mailboxes import MailboxStore
from ..store.outbox import OutboxStore
from ..trust.certs import Loa
from ..trust.signatures import SignatureCheck, verify_signed_contract
from ..trust.validation import CertificateCheck, CertificateChecker
from ..trust.xades_document import XadesCheck, verify_enveloped_xades
from .delivery_access import DeliveryAccessService
from .delivery_events import RELEASED, later_event, new_evidence

if TYPE_CHECKING:
    from ..store.db import Connection

NS = "https://vep.si/ns/vrocilnica/v1"


@dataclass(frozen=True)
class IssuedReceipt:
    receipt_id: uuid.UUID
    document: bytes
    delivery_ids: tuple[uuid.UUID, ...]


def delivery_commitment(delivery: DeliveryRow, salt: str) -> str:
    """What a vročilnica says about one delivery: a salted SHA-256 of its details.

    The signed vročilnica goes into every listed sender's acceptance evidence (ZPP
    141.a(6) collects several deliveries in one signature); the salt, given only to that
    delivery's sender in its evidence, lets them check their own line and learn nothing
    about the others'."""
    details = {
        "delivery_id": str(delivery.delivery_id),
        "sender": delivery.sender_address,
        "subject": delivery.subject,
        "submitted_at": delivery.submitted_at.isoformat(),
        "parts": [{"name": p.name, "size": p.size, "sha256": p.sha256} for p in delivery.parts],
    }
    canonical = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{salt}|{canonical}".encode()).hexdigest()


class AcceptanceService:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        deliveries: DeliveryStore,
        mailboxes: MailboxStore,
        reading: DeliveryAccessService,
        contacts: ContactStore,
        outbox: OutboxStore,
        sealer: EvidenceSealer,
        checker: CertificateChecker,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._deliveries = deliveries
        self._mailboxes = mailboxes
        self._reading = reading
        self._contacts = contacts
        self._outbox = outbox
        self._sealer = sealer
        self._checker = checker

    async def _recipient_for_acceptance(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None
    ) -> tuple[DeliveryRow, str]:
        view = await self._reading.view(delivery_id, check, mailbox)
        if view.recipient is None or view.delivery.kind != "return_receipt":
            raise NotFound("No return-receipt delivery waits for you here.")
        access = view.access
        assert access is not None  # every view as a recipient carries the membership
        if access.mailbox.state == "readonly":
            raise Refused(
                "Read-only access after termination: nothing can be received (R8.4).",
                "mailbox_readonly",
            )
        if not access.has("accept"):
            raise Refused(
                "This needs the accept permission.", "permission_required", permission="accept"
            )
        if check.loa is not Loa.HIGH:
            raise Refused(
                "Accepting a formal delivery needs a qualified certificate on a smart card "
                "(LoA high, R5.3).",
                "loa_high_required",
            )
        # What waited 15 days is served, whether or not a run has recorded it yet: neither
        # accepted now nor listed in a vročilnica (R5.3).
        recipient, delivery = view.recipient, view.delivery
        if await self._serve_expired(self._clock.now(), recipient):
            delivery = await self._deliveries.get(delivery.delivery_id) or delivery
        row = delivery.recipient(recipient)
        if row is None or row.state != "awaiting_acceptance":
            raise Conflict("This delivery no longer waits for acceptance.", "not_waiting")
        return delivery, recipient

    async def issue_receipt(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None = None
    ) -> IssuedReceipt:
        """The vročilnica to sign: every return-receipt delivery waiting in the mailbox
        (``mailbox`` names it when the caller reads several recipients of the delivery)."""
        _, recipient = await self._recipient_for_acceptance(delivery_id, check, mailbox)
        now = self._clock.now()
        waiting = await self._deliveries.awaiting(recipient)
        root = etree.Element(f"{{{NS}}}Vrocilnica", nsmap={None: NS})
        receipt_id = uuid.uuid4()
        etree.SubElement(root, f"{{{NS}}}ReceiptId").text = str(receipt_id)
        etree.SubElement(root, f"{{{NS}}}IssuedAt").text = now.isoformat()
        etree.SubElement(root, f"{{{NS}}}Recipient").text = recipient
        person = etree.SubElement(root, f"{{{NS}}}SignedBy")
        person.set("issuer", check.facts.issuer)
        person.set("serial", check.facts.serial)
        person.set("sha256", check.facts.fingerprint)
        person.text = check.facts.common_name or check.facts.person_id
        listed = etree.SubElement(root, f"{{{NS}}}Deliveries", count=str(len(waiting)))
        salts: dict[str, str] = {}
        for did in waiting:
            delivery = await self._deliveries.get(did)
            if delivery is None:
                continue
            salts[str(did)] = secrets.token_hex(16)
            item = etree.SubElement(listed, f"{{{NS}}}Delivery", id=str(did))
            commitment = etree.SubElement(item, f"{{{NS}}}Commitment", algorithm="sha256")
            commitment.text = delivery_commitment(delivery, salts[str(did)])
        etree.SubElement(root, f"{{{NS}}}Statement").text = (
            "S podpisom potrjujem prejem navedenih pošiljk. "
            "By signing I acknowledge receipt of the deliveries listed."
        )
        document = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        await self._deliveries.insert_receipt(
            receipt_id, recipient, check.facts.person_id, now, document, list(waiting), salts
        )
        return IssuedReceipt(receipt_id, document, tuple(waiting))

    async def accept_signed(
        self,
        delivery_id: str,
        check: CertificateCheck,
        receipt_id: str,
        signature: bytes,
        mailbox: str | None = None,
    ) -> int:
        """Verify the signed vročilnica and accept every delivery it lists."""
        delivery, recipient = await self._recipient_for_acceptance(delivery_id, check, mailbox)
        try:
            rid = uuid.UUID(receipt_id)
        except ValueError:
            raise NotFound("No such receipt.") from None
        receipt = await self._deliveries.receipt(rid)
        if (
            receipt is None
            or receipt["issued_to"] != check.facts.person_id
            or receipt["recipient_address"] != recipient
            or delivery.delivery_id not in receipt["delivery_ids"]
        ):
            raise NotFound("No such receipt.")
        if receipt["used_at"] is not None:
            raise Conflict("This receipt was already used.", "receipt_used")
        issued = bytes(receipt["document"])
        if signature.lstrip().startswith(b"<"):  # XAdES enveloped
            result: XadesCheck | SignatureCheck = await verify_enveloped_xades(
                issued, signature, self._checker, self._checker.now()
            )
        else:  # detached CAdES over the exact bytes issued
            result = await verify_signed_contract(
                issued, signature, self._checker, self._checker.now()
            )
        if result.signer.facts.fingerprint != check.facts.fingerprint:
            raise Refused(
                "The return receipt must be signed with the certificate of this session.",
                "signer_mismatch",
            )
        if result.signer.loa is not Loa.HIGH:
            raise Refused("The signature must come from a QSCD (R5.3).", "loa_high_required")
        salts: dict[str, str] = receipt["salts"] or {}
        return await self._decide(
            list(receipt["delivery_ids"]),
            recipient,
            check,
            "accepted",
            "signature",
            (
                ("recipient_signature", base64.b64encode(signature).decode()),
                ("signature_format", result.format),
                ("receipt_id", str(rid)),
                ("receipt_sha256", hashlib.sha256(issued).hexdigest()),
            ),
            per_delivery={uuid.UUID(d): (("commitment_salt", salt),) for d, salt in salts.items()},
            receipt_id=rid,
        )

    async def accept_by_login(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None = None
    ) -> int:
        if self._settings.receipt_signature != "login":
            raise Refused("Sign the return receipt (vročilnica) to accept.", "signature_required")
        _, recipient = await self._recipient_for_acceptance(delivery_id, check, mailbox)
        waiting = await self._deliveries.awaiting(recipient)
        return await self._decide(waiting, recipient, check, "accepted", "login", ())

    async def reject(
        self, delivery_id: str, check: CertificateCheck, mailbox: str | None = None
    ) -> int:
        delivery, recipient = await self._recipient_for_acceptance(delivery_id, check, mailbox)
        return await self._decide(
            [delivery.delivery_id], recipient, check, "rejected", "rejection", ()
        )

    async def _decide(
        self,
        delivery_ids: list[uuid.UUID],
        recipient: str,
        check: CertificateCheck | None,
        state: str,
        method: str,
        extra: tuple[tuple[str, str], ...],
        now: datetime | None = None,
        per_delivery: dict[uuid.UUID, tuple[tuple[str, str], ...]] | None = None,
        receipt_id: uuid.UUID | None = None,
        changed_also: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> int:
        now = now or self._clock.now()
        event = {
            "accepted": EventName.CONSIGNMENT_ACCEPTANCE,
            "rejected": EventName.CONSIGNMENT_REJECTION,
            "deemed_served": EventName.ACCEPTANCE_REJECTION_EXPIRY,
        }[state]
        mailbox = await self._mailboxes.get(recipient)
        decisions: list[tuple[uuid.UUID, str, NewEvidence]] = []
        for did in delivery_ids:
            delivery = await self._deliveries.get(did)
            if delivery is None:
                continue
            sender = await self._mailboxes.get(delivery.sender_address)
            sealed = await self._sealer.seal(
                later_event(
                    delivery,
                    event,
                    sender.display_name if sender else delivery.sender_address,
                    Party(
                        mailbox.display_name if mailbox else recipient,
                        recipient,
                        CertRef.from_facts(check.facts) if check else None,
                    ),
                    now,
                    reasons=(("deemed_service", "15 days without acceptance (ZUP/ZPP)"),)
                    if state == "deemed_served"
                    else (),
                    released=state in RELEASED,
                    # no list of the other deliveries: they may be other senders' (review)
                    extra=(
                        ("acceptance_method", method),
                        *extra,
                        *(per_delivery or {}).get(did, ()),
                    ),
                )
            )
            decisions.append((did, recipient, new_evidence(sealed, recipient)))
        actor = check.facts.person_id if check else "system"
        try:
            return await self._deliveries.record_decision(
                decisions,
                state,
                method,
                now,
                actor,
                receipt_id=receipt_id,
                changed_also=changed_also,
            )
        except ReceiptUsed:
            raise Conflict("This receipt was already used.", "receipt_used") from None

    async def deemed_service(self, now: datetime | None = None) -> int:
        """R5.3: issue AcceptanceRejectionExpiry for deliveries not accepted in 15 days,
        and tell the sender — in the same transaction, so a served delivery is never left
        unannounced (it is no longer due, so no later run would tell them)."""
        return await self._serve_expired(now or self._clock.now())

    async def _serve_expired(self, now: datetime, recipient: str | None = None) -> int:
        """Deem served what waited 15 days (``recipient``'s only, when given).

        Service is deemed done when the 15 days end — ZPP 141.a: "z dnem poteka tega
        roka" — so that moment (notification + 15 days), not when a run finds it, is the
        evidence's EventTime and the decision's time (from which R8.1's retention and a
        court's deadlines count). The record is sealed and time-stamped now, later."""
        days = timedelta(days=self._settings.deemed_service_days)
        due = await self._deliveries.due_for_deemed_service(now - days, recipient)
        done = 0
        for row in due:
            sender: str = row["sender_address"]

            async def tell_sender(conn: Connection, sender: str = sender) -> None:
                for email in await self._contacts.confirmed(conn, sender):
                    await self._outbox.enqueue(
                        conn,
                        to=email,
                        kind="mailbox_notice",
                        params={"mailbox": sender, "notice": "state_changed"},
                        at=now,
                    )

            done += await self._decide(
                [row["delivery_id"]],
                row["recipient_address"],
                None,
                "deemed_served",
                "deemed",
                (),
                row["notified_at"] + days,
                changed_also=tell_sender,
            )
        return done
