"""What a receipt states, read back from the sealed evidence XML (R6.3, R6.6).

A receipt is a human-readable rendering of one piece of evidence, so everything it says is
taken from that evidence (ETSI EN 319 522-3 shape, :mod:`server.evidence.xml`), not from
the database: the receipt cannot state anything the sealed evidence does not. The XML is
parsed as untrusted input (no entities, no DTD, no network; R7.4's rule) and checked
against the evidence schema before any value is read.

The seal of the evidence is *not* verified here: the caller passes evidence this service
issued and stored (``EvidenceRow.xml``); foreign evidence goes through
:func:`server.evidence.verify_evidence` first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from ..evidence import rfc3161
from ..evidence import xml as evidence_xml
from ..evidence.errors import TimestampError
from ..evidence.model import CertRef, ContentPart, EventName, Party

NS = evidence_xml.NS
VEP = evidence_xml.VEP_NS
DS = evidence_xml.DS_NS
XADES = evidence_xml.XADES_NS
XML_LANG = f"{{{evidence_xml.XML_NS}}}lang"


class ReceiptDataError(ValueError):
    """The bytes are not evidence of this service's format (malformed, invalid, unknown)."""


@dataclass(frozen=True)
class ReceiptData:
    """The facts one receipt states, all taken from one sealed evidence (R6.3).

    ``qualified`` is the evidence's own ``vep:Qualified`` (R6.6); the issuer lowers it to
    False when the receipt itself is not sealed in qualified mode, so that a receipt never
    claims more than both its evidence and its own seal are.
    """

    evidence_id: str
    event: EventName
    delivery_id: str
    delivery_kind: str  # "registered" | "return_receipt"
    event_time: datetime
    submission_time: datetime
    sender: Party
    recipients: tuple[Party, ...]
    parts: tuple[ContentPart, ...]
    reasons: tuple[tuple[str, str], ...]  # (code, details)
    subject_sha256: str | None
    #: how the recipient decided (``vep:Extra name="acceptance_method"``): "signature",
    #: "login", "rejection" or "deemed"; None for events that are no decision
    acceptance_method: str | None
    issuer_name: str
    policy_id: str
    qualified: bool
    #: genTime of the evidence's XAdES SignatureTimeStamp, when it carries one.
    timestamp_time: datetime | None
    #: SHA-256 of the evidence XML bytes exactly as stored and served (hex).
    evidence_sha256: str


def _e(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _v(tag: str) -> str:
    return f"{{{VEP}}}{tag}"


def _text(node: etree._Element, path: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise ReceiptDataError(f"evidence lacks {path}")
    return str(found.text)


def _time(node: etree._Element, path: str) -> datetime:
    value = _text(node, path)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReceiptDataError(f"evidence {path}: not a date-time: {value!r}") from None
    if moment.tzinfo is None:
        raise ReceiptDataError(f"evidence {path}: no time zone")
    return moment


def _sha256(node: etree._Element, what: str) -> str:
    """The hex SHA-256 of a XAdES ``DigestAlgAndValueType`` (base64 ds:DigestValue)."""
    method = node.find(f"{{{DS}}}DigestMethod")
    if method is None or method.get("Algorithm") != evidence_xml.SHA256_URI:
        raise ReceiptDataError(f"evidence {what}: digest is not SHA-256")
    try:
        value = base64.b64decode(_text(node, f"{{{DS}}}DigestValue"), validate=True)
    except binascii.Error:
        raise ReceiptDataError(f"evidence {what}: digest is not base64") from None
    if len(value) != 32:
        raise ReceiptDataError(f"evidence {what}: a SHA-256 digest has 32 bytes")
    return value.hex()


def _party(node: etree._Element) -> Party:
    """Name, mailbox and, when the evidence names it, the certificate the party acted with
    (for an acceptance: the person who accepted, R5.3)."""
    reference = node.find(_e("CertificateReference"))
    certificate = None
    if reference is not None:
        serial = int(_text(reference, f"{{{XADES}}}IssuerSerial/{{{DS}}}X509SerialNumber"))
        certificate = CertRef(
            issuer=_text(reference, f"{{{XADES}}}IssuerSerial/{{{DS}}}X509IssuerName"),
            serial=f"{serial:x}",
            sha256=_sha256(_required(reference, f"{{{XADES}}}CertDigest"), "certificate digest"),
        )
    return Party(_text(node, _e("Name")), _text(node, _e("Mailbox")), certificate)


def _part(node: etree._Element) -> ContentPart:
    named = node.find(_e("Name"))
    # absent: withheld until release (R5.3); present but empty: an empty name
    name = None if named is None else named.text or ""
    digest = node.find(_e("Digest"))
    if digest is None:
        raise ReceiptDataError(f"evidence content part {name!r} has no digest")
    return ContentPart(
        name=name,
        media_type=_text(node, _e("MediaType")),
        size=int(_text(node, _e("Size"))),
        sha256=_sha256(digest, f"content part {name!r}"),
    )


def _timestamp_time(root: etree._Element) -> datetime | None:
    path = (
        f"{{{DS}}}Signature/{{{DS}}}Object/{{{XADES}}}QualifyingProperties/"
        f"{{{XADES}}}UnsignedProperties/{{{XADES}}}UnsignedSignatureProperties/"
        f"{{{XADES}}}SignatureTimeStamp/{{{XADES}}}EncapsulatedTimeStamp"
    )
    encapsulated = root.find(path)
    if encapsulated is None or not encapsulated.text:
        return None
    try:
        return rfc3161.parse(base64.b64decode(encapsulated.text)).gen_time
    except (binascii.Error, TimestampError):
        raise ReceiptDataError("evidence SignatureTimeStamp is not an RFC 3161 token") from None


def receipt_data_from_evidence(xml: bytes) -> ReceiptData:
    """The facts of the sealed evidence ``xml`` (R6.3); :class:`ReceiptDataError` if it is
    not well-formed, schema-valid evidence of our format."""
    try:
        root = evidence_xml.parse_safely(xml)
        evidence_xml.validate(root)
    except (etree.XMLSyntaxError, etree.DocumentInvalid, ValueError) as exc:
        raise ReceiptDataError(f"not VEP evidence: {exc}") from None
    if root.tag != _e("Evidence"):
        raise ReceiptDataError(f"not VEP evidence: root element {root.tag}")
    try:
        event = evidence_xml.event_from_uri(_text(root, _e("ERDSEventId")))
        issuer = root.find(_e("EvidenceIssuerDetails"))
        extensions = root.find(_v("Extensions"))
        if issuer is None or extensions is None:
            raise ReceiptDataError("evidence lacks its issuer details or extensions")
        subject = extensions.find(_v("SubjectDigest"))
        return ReceiptData(
            evidence_id=_text(root, _e("EvidenceIdentifier")),
            event=event,
            delivery_id=_text(extensions, _v("DeliveryId")),
            delivery_kind=_text(extensions, _v("DeliveryKind")),
            event_time=_time(root, _e("EventTime")),
            submission_time=_time(root, _e("SubmissionTime")),
            sender=_party(_required(root, _e("SenderDetails"))),
            recipients=tuple(_party(n) for n in root.findall(_e("RecipientDetails"))),
            parts=tuple(
                _part(n) for n in root.findall(f"{_e('UserContentInfo')}/{_e('ContentPart')}")
            ),
            reasons=tuple(
                (_text(n, _e("Code")), _text(n, _e("Details")))
                for n in root.findall(f"{_e('EventReasons')}/{_e('EventReason')}")
            ),
            subject_sha256=None if subject is None else _sha256(subject, "subject digest"),
            acceptance_method=next(
                (
                    (n.text or "")
                    for n in extensions.findall(_v("Extra"))
                    if n.get("name") == "acceptance_method"
                ),
                None,
            ),
            issuer_name=_text(issuer, _e("Name")),
            policy_id=_text(root, f"{_e('EvidenceIssuerPolicyID')}/{_e('PolicyID')}"),
            qualified=_text(issuer, _v("Qualified")).strip() in ("true", "1"),
            timestamp_time=_timestamp_time(root),
            evidence_sha256=hashlib.sha256(xml).hexdigest(),
        )
    except ReceiptDataError:
        raise
    except ValueError as exc:  # a model check: unknown event, bad digest, empty mailbox
        raise ReceiptDataError(f"not VEP evidence: {exc}") from None


def _required(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path)
    if found is None:
        raise ReceiptDataError(f"evidence lacks {path}")
    return found


__all__ = ["ReceiptData", "ReceiptDataError", "receipt_data_from_evidence"]
