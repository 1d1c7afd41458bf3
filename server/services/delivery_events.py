"""What every evidence after a submission is built from (R6.1, R6.2): the delivery's
stored facts, so that a handover, an acceptance or a disposal names the same sender
certificate, subject digest and content digests as the submission did."""

from __future__ import annotations

import uuid
from datetime import datetime

from ..content.files import StoredPart
from ..evidence.model import CertRef, ContentPart, EventName, EvidenceEvent, Party
from ..evidence.seal import SealedEvidence
from ..store.deliveries import DeliveryRow, NewEvidence, PartRow

#: A recipient's states in which the content is theirs to read (R5.3): a registered
#: delivery's at once, a return receipt's once accepted or deemed served.
RELEASED = ("consigned", "accepted", "deemed_served")


def sender_ref(delivery: DeliveryRow) -> CertRef:
    """The certificate the sender submitted with, named in every later evidence (R6.2)."""
    return CertRef(
        delivery.sender_cert_issuer, delivery.sender_cert_serial, delivery.sender_fingerprint
    )


def later_event(
    delivery: DeliveryRow,
    event: EventName,
    sender_name: str,
    recipient: Party,
    at: datetime,
    *,
    released: bool,
    reasons: tuple[tuple[str, str], ...] = (),
    extra: tuple[tuple[str, str], ...] = (),
) -> EvidenceEvent:
    """An event after the submission (handover, acceptance, …) of one recipient, bound to
    the same sender certificate, subject digest and content digests as the submission.
    ``released``: whether the content is the recipient's to read at that event; if not,
    the parts are named by digest only (R5.3, :meth:`.ContentPart.withheld`). Required,
    so that no caller names them by forgetting it."""
    parts = (ContentPart(p.name, p.media_type, p.size, p.sha256) for p in delivery.parts)
    return EvidenceEvent(
        event=event,
        evidence_id=str(uuid.uuid4()),
        delivery_id=str(delivery.delivery_id),
        event_time=at,
        submission_time=delivery.submitted_at,
        sender=Party(sender_name, delivery.sender_address, sender_ref(delivery)),
        subject_sha256=delivery.subject_sha256,
        recipients=(recipient,),
        parts=tuple(p if released else p.withheld() for p in parts),
        kind=delivery.kind,
        reasons=reasons,
        extra=extra,
    )


def stored_part(row: PartRow) -> StoredPart:
    """What the content store needs to give a part back: its file's locator and sizes, or
    the sealed bytes kept in the row (R5.5)."""
    return StoredPart(row.locator, row.size, row.sha256, row.ciphertext_size, row.inline)


def new_evidence(sealed: SealedEvidence, recipient: str | None) -> NewEvidence:
    return NewEvidence(
        evidence_id=uuid.UUID(sealed.evidence_id),
        recipient_address=recipient,
        event=str(sealed.event),
        event_time=sealed.event_time,
        xml=sealed.xml,
        sha256=sealed.sha256,
        qualified=sealed.qualified,
    )
