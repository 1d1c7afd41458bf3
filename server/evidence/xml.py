"""Evidence as XML in the shape of ETSI EN 319 522-3, and its schema check.

The document is the unsigned ``Evidence`` element; :mod:`server.evidence.seal` appends the
XAdES ``ds:Signature`` as its last child. Element names follow EN 319 522-3 in its namespace
``http://uri.etsi.org/19522/v1#``; what EN 319 522 does not define (delivery kind, subject
digest, the qualification statement of R6.6, our ``Extra`` values) lives in our own
namespace ``https://vep.si/ns/evidence/v1`` so that no reader mistakes it for ETSI's.
``schemas/evidence/vep-evidence-v1.xsd`` describes exactly this output.

Certificate references use XAdES ``CertIDType`` (ETSI EN 319 132-1 §5.2.2: digest + issuer
and decimal serial), and content digests XAdES ``DigestAlgAndValueType`` (base64, as in
XML-DSig), so that generic XAdES tooling can read them.
"""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from .model import CertRef, EventName, EvidenceEvent, IssuerDetails, Party

NS = "http://uri.etsi.org/19522/v1#"
VEP_NS = "https://vep.si/ns/evidence/v1"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NSMAP = {None: NS, "vep": VEP_NS, "ds": DS_NS, "xades": XADES_NS}
#: EN 319 522-3 event URIs; our own event (ContentDisposition) is under our namespace.
ETSI_EVENT_PREFIX = "http://uri.etsi.org/19522/Event/"
VEP_EVENT_PREFIX = VEP_NS + "/Event/"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
FORMAT_VERSION = "1"

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "evidence"
SCHEMA_FILE = SCHEMA_DIR / "vep-evidence-v1.xsd"

#: R6.6: what every evidence says about its legal standing, in English and Slovenian.
STATEMENTS: dict[bool, tuple[tuple[str, str], ...]] = {
    False: (
        (
            "en",
            "NOT QUALIFIED. This evidence was issued by a development or otherwise "
            "non-qualified configuration of the service. It is not qualified electronic "
            "registered delivery evidence under Regulation (EU) No 910/2014 (eIDAS), "
            "Article 44.",
        ),
        (
            "sl",
            "NI KVALIFICIRANO. Ta dokaz je izdala razvojna ali drugače nekvalificirana "
            "postavitev storitve. Ni dokaz kvalificirane storitve elektronske priporočene "
            "dostave po Uredbi (EU) št. 910/2014 (eIDAS), 44. člen.",
        ),
    ),
    True: (
        (
            "en",
            "Qualified. Sealed with the provider's qualified electronic seal (key in a "
            "hardware security module) and time-stamped by a qualified time-stamping "
            "authority (Regulation (EU) No 910/2014, Articles 42 and 44).",
        ),
        (
            "sl",
            "Kvalificirano. Zapečateno s kvalificiranim elektronskim žigom ponudnika "
            "(ključ v strojnem varnostnem modulu) in časovno žigosano pri kvalificiranem "
            "ponudniku časovnega žigosanja (Uredba (EU) št. 910/2014, 42. in 44. člen).",
        ),
    ),
}


def event_uri(event: EventName) -> str:
    prefix = ETSI_EVENT_PREFIX if event.standard else VEP_EVENT_PREFIX
    return prefix + event.value


def event_from_uri(uri: str) -> EventName:
    """The event named by an ``ERDSEventId`` (ValueError for an unknown URI)."""
    for prefix in (ETSI_EVENT_PREFIX, VEP_EVENT_PREFIX):
        if uri.startswith(prefix):
            event = EventName(uri[len(prefix) :])
            if event_uri(event) == uri:
                return event
    raise ValueError(f"unknown ERDSEventId {uri!r}")


def xml_time(moment: datetime) -> str:
    """xs:dateTime in UTC with ``Z`` (fractional seconds only when there are any)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _e(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _v(tag: str) -> str:
    return f"{{{VEP_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _digest(parent: etree._Element, tag: str, sha256_hex: str) -> etree._Element:
    """A XAdES ``DigestAlgAndValueType``: ds:DigestMethod + base64 ds:DigestValue."""
    node = _sub(parent, tag)
    etree.SubElement(node, f"{{{DS_NS}}}DigestMethod", Algorithm=SHA256_URI)
    _sub(node, f"{{{DS_NS}}}DigestValue", base64.b64encode(bytes.fromhex(sha256_hex)).decode())
    return node


def _cert_ref(parent: etree._Element, ref: CertRef) -> None:
    """XAdES ``CertIDType`` (EN 319 132-1): CertDigest + IssuerSerial (decimal serial)."""
    node = _sub(parent, _e("CertificateReference"))
    _digest(node, f"{{{XADES_NS}}}CertDigest", ref.sha256)
    issuer_serial = _sub(node, f"{{{XADES_NS}}}IssuerSerial")
    _sub(issuer_serial, f"{{{DS_NS}}}X509IssuerName", ref.issuer)
    _sub(issuer_serial, f"{{{DS_NS}}}X509SerialNumber", str(int(ref.serial, 16)))


def _party(parent: etree._Element, tag: str, party: Party) -> None:
    node = _sub(parent, _e(tag))
    _sub(node, _e("Name"), party.name)
    _sub(node, _e("Mailbox"), party.mailbox)
    if party.certificate is not None:
        _cert_ref(node, party.certificate)


def build(event: EvidenceEvent, issuer: IssuerDetails, qualified: bool) -> etree._Element:
    """The unsigned ``Evidence`` element for ``event`` (EN 319 522-3 shape, R6.1/R6.2/R6.6)."""
    root = etree.Element(_e("Evidence"), nsmap=NSMAP, version=FORMAT_VERSION)
    _sub(root, _e("EvidenceIdentifier"), event.evidence_id)
    _sub(root, _e("ERDSEventId"), event_uri(event.event))
    _sub(root, _e("EventTime"), xml_time(event.event_time))
    _sub(root, _e("SubmissionTime"), xml_time(event.submission_time))
    if event.reasons:
        reasons = _sub(root, _e("EventReasons"))
        for code, text in event.reasons:
            reason = _sub(reasons, _e("EventReason"))
            _sub(reason, _e("Code"), code)
            _sub(reason, _e("Details"), text)
    _party(root, "SenderDetails", event.sender)
    for recipient in event.recipients:
        _party(root, "RecipientDetails", recipient)
    content = _sub(root, _e("UserContentInfo"))
    for part in event.parts:
        node = _sub(content, _e("ContentPart"))
        _sub(node, _e("Name"), part.name)
        _sub(node, _e("MediaType"), part.media_type)
        _sub(node, _e("Size"), str(part.size))
        _digest(node, _e("Digest"), part.sha256)
    policy = _sub(root, _e("EvidenceIssuerPolicyID"))
    _sub(policy, _e("PolicyID"), issuer.policy_id)
    issuer_node = _sub(root, _e("EvidenceIssuerDetails"))
    _sub(issuer_node, _e("Name"), issuer.name)
    _cert_ref(issuer_node, issuer.seal_certificate)
    _sub(issuer_node, _v("Qualified"), "true" if qualified else "false")
    for lang, text in STATEMENTS[qualified]:
        statement = _sub(issuer_node, _v("QualificationStatement"), text)
        statement.set(f"{{{XML_NS}}}lang", lang)
    extensions = _sub(root, _v("Extensions"))
    _sub(extensions, _v("DeliveryId"), event.delivery_id)
    _sub(extensions, _v("DeliveryKind"), event.kind)
    if event.subject_sha256 is not None:
        _digest(extensions, _v("SubjectDigest"), event.subject_sha256)
    for name, value in event.extra:
        _sub(extensions, _v("Extra"), value).set("name", name)
    return root


def to_bytes(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8"))


_schema_lock = threading.Lock()
_schema: etree.XMLSchema | None = None


def schema() -> etree.XMLSchema:
    """The evidence schema, loaded once from files only (no network, no DTD)."""
    global _schema
    with _schema_lock:
        if _schema is None:
            parser = etree.XMLParser(
                resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
            )
            _schema = etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))
        return _schema


def validate(document: etree._Element | bytes) -> None:
    """Raise :class:`etree.DocumentInvalid` unless ``document`` matches the schema."""
    if isinstance(document, bytes):
        document = parse_safely(document)
    schema().assertValid(document)


def parse_safely(data: bytes) -> etree._Element:
    """Parse untrusted XML: no entities, no DTD, no network (R7.4's rule, here too)."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    root = etree.fromstring(data, parser)
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise ValueError("a DOCTYPE is not allowed in evidence")
    for _ in root.iter(etree.Entity):
        raise ValueError("entities are not allowed in evidence")
    return root


__all__ = [
    "NS",
    "SCHEMA_FILE",
    "STATEMENTS",
    "VEP_NS",
    "build",
    "event_from_uri",
    "event_uri",
    "parse_safely",
    "schema",
    "to_bytes",
    "validate",
    "xml_time",
]
