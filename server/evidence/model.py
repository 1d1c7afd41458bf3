"""Evidence as values: what happened to a delivery, independent of how it is serialised.

ETSI EN 319 522-2 §8 names the events an ERDS records (submission, consignment,
notification, acceptance/rejection, handover, expiry); EN 319 522-3 gives their XML form,
which :mod:`server.evidence.xml` writes. These dataclasses are checked on construction
(aware datetimes, lower-case hex SHA-256, known event and kind), so that a malformed value
is refused where it is made, not discovered later in a sealed document (R6.1, R6.2).
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..trust.certs import CertificateFacts, parse

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SERIAL_HEX = re.compile(r"[0-9a-f]+")
_KINDS = ("registered", "return_receipt")
#: What the schema's facets allow (schemas/evidence): checked where the values are made,
#: so that evidence needs no schema check at seal time (VEP_EVIDENCE_SCHEMA_CHECK).
_EXTRA_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: RFC 3986 absolute URI characters (scheme ":" then unreserved, reserved or %XX).
_ABSOLUTE_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"
)


class EventName(enum.StrEnum):
    """ETSI EN 319 522-2 event names (``ERDSEventId``), plus our deletion record."""

    SUBMISSION_ACCEPTANCE = "SubmissionAcceptance"
    SUBMISSION_REJECTION = "SubmissionRejection"
    CONTENT_CONSIGNMENT = "ContentConsignment"
    NOTIFICATION_FOR_ACCEPTANCE = "NotificationForAcceptance"
    CONSIGNMENT_ACCEPTANCE = "ConsignmentAcceptance"
    CONSIGNMENT_REJECTION = "ConsignmentRejection"
    ACCEPTANCE_REJECTION_EXPIRY = "AcceptanceRejectionExpiry"
    CONTENT_HANDOVER = "ContentHandover"
    #: Not an ETSI event: the record that content was deleted (R8.1); evidence outlives it.
    CONTENT_DISPOSITION = "ContentDisposition"

    @property
    def standard(self) -> bool:
        """True for the events EN 319 522-2 defines (their URIs are in ETSI's namespace)."""
        return self is not EventName.CONTENT_DISPOSITION


def _require_sha256(what: str, value: str) -> None:
    if _SHA256_HEX.fullmatch(value) is None:  # not .match: "$" passes a final \n
        raise ValueError(f"{what}: expected 64 lower-case hex digits, got {value!r}")


def _require_aware(what: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: a timezone-aware datetime is required")


@dataclass(frozen=True)
class CertRef:
    """A reference to a certificate (issuer + serial + digest, as XAdES ``CertIDType``)."""

    issuer: str  # RFC 4514
    serial: str  # lower-case hex, as issuers print it
    sha256: str  # of the DER, lower-case hex

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("CertRef.issuer must not be empty")
        if _SERIAL_HEX.fullmatch(self.serial) is None:
            raise ValueError(f"CertRef.serial: expected lower-case hex, got {self.serial!r}")
        _require_sha256("CertRef.sha256", self.sha256)

    @classmethod
    def from_facts(cls, facts: CertificateFacts) -> CertRef:
        """The reference authentication already computed (same issuer spelling, R1.4)."""
        return cls(issuer=facts.issuer, serial=facts.serial, sha256=facts.fingerprint)

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertRef:
        return cls.from_facts(parse(certificate.public_bytes(Encoding.DER))[1])


@dataclass(frozen=True)
class Party:
    """A sender or recipient: display name, mailbox address, the certificate they used."""

    name: str
    mailbox: str
    certificate: CertRef | None = None

    def __post_init__(self) -> None:
        if not self.mailbox:
            raise ValueError("Party.mailbox must not be empty")


@dataclass(frozen=True)
class ContentPart:
    """One part of the user content, bound into the evidence by its SHA-256 (R6.2).

    ``name`` is None when the evidence withholds it: evidence a recipient may fetch before
    a return-receipt delivery's content is released to them binds each part by digest,
    media type and size only, since a file's name can tell what the content is (R5.3:
    before acceptance the recipient sees the sender and subject, not the content)."""

    name: str | None
    media_type: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        # bool is an int in Python, and would be written "True" (not xs:nonNegativeInteger)
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError("ContentPart.size must be a non-negative integer")
        _require_sha256(f"ContentPart {self.name!r}", self.sha256)

    def withheld(self) -> ContentPart:
        """The part as evidence names it before release to the recipient (R5.3)."""
        return replace(self, name=None)


@dataclass(frozen=True)
class IssuerDetails:
    """The provider issuing evidence: its name, policy and seal certificate (EN 319 522-3)."""

    name: str
    policy_id: str  # a URI naming the evidence policy / practice statement
    seal_certificate: CertRef

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("IssuerDetails.name must not be empty")
        if _ABSOLUTE_URI.fullmatch(self.policy_id) is None:
            raise ValueError(f"IssuerDetails.policy_id is not an absolute URI: {self.policy_id!r}")


@dataclass(frozen=True)
class EvidenceEvent:
    """One step of one delivery, to be issued as sealed evidence (R6.1)."""

    event: EventName
    evidence_id: str
    delivery_id: str
    event_time: datetime
    submission_time: datetime
    sender: Party
    recipients: tuple[Party, ...]
    parts: tuple[ContentPart, ...] = ()
    #: (code, text) pairs: why the event happened (EN 319 522-3 ``EventReasons``).
    reasons: tuple[tuple[str, str], ...] = ()
    subject_sha256: str | None = None
    kind: str = "registered"
    #: Our extensions as (name, value): acceptance_method, recipient_signature, ...
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", EventName(self.event))
        # The canonical form only (the schema's UuidType): uuid.UUID also reads upper case,
        # braces, "urn:uuid:", no hyphens and non-ASCII digits.
        if str(uuid.UUID(self.evidence_id)) != self.evidence_id:
            raise ValueError(
                f"EvidenceEvent.evidence_id: not a canonical UUID {self.evidence_id!r}"
            )
        if not self.delivery_id:
            raise ValueError("EvidenceEvent.delivery_id must not be empty")
        _require_aware("EvidenceEvent.event_time", self.event_time)
        _require_aware("EvidenceEvent.submission_time", self.submission_time)
        if not self.recipients:
            raise ValueError("EvidenceEvent.recipients must not be empty")
        if self.subject_sha256 is not None:
            _require_sha256("EvidenceEvent.subject_sha256", self.subject_sha256)
        if self.kind not in _KINDS:
            raise ValueError(f"EvidenceEvent.kind: expected one of {_KINDS}, got {self.kind!r}")
        for code, _ in self.reasons:
            if not code or code.strip() != code or " " in code:
                raise ValueError(f"EvidenceEvent.reasons: bad code {code!r}")
        for name, _ in self.extra:
            if _EXTRA_NAME.fullmatch(name) is None:  # "$" would let a final "\n" through
                raise ValueError(f"EvidenceEvent.extra: bad name {name!r}")


def new_evidence_id() -> str:
    return str(uuid.uuid4())


__all__ = [
    "CertRef",
    "ContentPart",
    "EventName",
    "EvidenceEvent",
    "IssuerDetails",
    "Party",
    "new_evidence_id",
]
