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

:func:`render` writes the element as text that is already its canonical form (C14N 1.0,
see :mod:`.c14n`) instead of building an lxml tree: the seal's first reference digests
that text as it is (XML-DSig §4.4.3.2, URI "" after the enveloped-signature transform), so
no tree, no parse and no canonicaliser run per evidence (issue 4 benchmark). Every string
from the event or the issuer goes through :func:`.c14n.text` or :func:`.c14n.attribute`.
The elements, their order and their attributes are those of the lxml builder this
replaced, which ``tests/evidence_reference.py`` keeps as the reference the tests compare
with. The output has no whitespace between elements.
"""

from __future__ import annotations

import base64
import functools
import threading
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from .c14n import attribute, namespace_declarations, text
from .model import CertRef, ContentPart, EventName, EvidenceEvent, IssuerDetails, Party

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

#: Every namespace is declared on the root, once (C14N 1.0 §2.3 order: see :mod:`.c14n`);
#: a document subset below it carries them all on its apex (:func:`.c14n.apex`).
NS_DECLARATIONS = namespace_declarations(NSMAP)
ROOT_START = f'<Evidence{NS_DECLARATIONS} version="{FORMAT_VERSION}">'
END = "</Evidence>"
XML_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"
DIGEST_METHOD = f'<ds:DigestMethod Algorithm="{SHA256_URI}"></ds:DigestMethod>'

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


def digest_element(tag: str, sha256_hex: str) -> str:
    """A XAdES ``DigestAlgAndValueType``: ds:DigestMethod + base64 ds:DigestValue."""
    value = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
    return f"<{tag}>{DIGEST_METHOD}<ds:DigestValue>{value}</ds:DigestValue></{tag}>"


def _cert_ref(ref: CertRef) -> str:
    """XAdES ``CertIDType`` (EN 319 132-1 §5.2.2): CertDigest + IssuerSerial, the serial in
    decimal (XML-DSig §4.5.4.1 ``X509SerialNumber`` is an integer)."""
    return (
        f"<CertificateReference>{digest_element('xades:CertDigest', ref.sha256)}"
        "<xades:IssuerSerial>"
        f"<ds:X509IssuerName>{text(ref.issuer)}</ds:X509IssuerName>"
        f"<ds:X509SerialNumber>{int(ref.serial, 16)}</ds:X509SerialNumber>"
        "</xades:IssuerSerial></CertificateReference>"
    )


def _party(tag: str, party: Party) -> str:
    certificate = "" if party.certificate is None else _cert_ref(party.certificate)
    return (
        f"<{tag}><Name>{text(party.name)}</Name><Mailbox>{text(party.mailbox)}</Mailbox>"
        f"{certificate}</{tag}>"
    )


def _content_part(part: ContentPart) -> str:
    # a withheld name is left out, not written empty (R5.3, ContentPart)
    name = "" if part.name is None else f"<Name>{text(part.name)}</Name>"
    return (
        f"<ContentPart>{name}<MediaType>{text(part.media_type)}</MediaType>"
        f"<Size>{part.size}</Size>{digest_element('Digest', part.sha256)}</ContentPart>"
    )


@functools.lru_cache(maxsize=8)
def _issuer(issuer: IssuerDetails, qualified: bool) -> str:
    """EvidenceIssuerPolicyID and EvidenceIssuerDetails: the same for every evidence of one
    sealer, so written once (R6.6: the statement of qualification in words)."""
    statements = "".join(
        f'<vep:QualificationStatement xml:lang="{lang}">{text(statement)}'
        "</vep:QualificationStatement>"
        for lang, statement in STATEMENTS[qualified]
    )
    return (
        f"<EvidenceIssuerPolicyID><PolicyID>{text(issuer.policy_id)}</PolicyID>"
        f"</EvidenceIssuerPolicyID><EvidenceIssuerDetails><Name>{text(issuer.name)}</Name>"
        f"{_cert_ref(issuer.seal_certificate)}"
        f"<vep:Qualified>{'true' if qualified else 'false'}</vep:Qualified>{statements}"
        "</EvidenceIssuerDetails>"
    )


def render(event: EvidenceEvent, issuer: IssuerDetails, qualified: bool) -> str:
    """The unsigned ``Evidence`` element for ``event`` (EN 319 522-3 shape, R6.1/R6.2/R6.6)
    as its own canonical text (C14N 1.0, :mod:`.c14n`): what the enveloped signature's
    first reference digests, and what :mod:`.seal` puts the signature into (before
    :data:`END`). ValueError when a string holds a character XML cannot carry."""
    out = [
        ROOT_START,
        f"<EvidenceIdentifier>{text(event.evidence_id)}</EvidenceIdentifier>",
        f"<ERDSEventId>{event_uri(event.event)}</ERDSEventId>",
        f"<EventTime>{xml_time(event.event_time)}</EventTime>",
        f"<SubmissionTime>{xml_time(event.submission_time)}</SubmissionTime>",
    ]
    if event.reasons:
        out.append("<EventReasons>")
        out.extend(
            f"<EventReason><Code>{text(code)}</Code><Details>{text(details)}</Details>"
            "</EventReason>"
            for code, details in event.reasons
        )
        out.append("</EventReasons>")
    out.append(_party("SenderDetails", event.sender))
    out.extend(_party("RecipientDetails", recipient) for recipient in event.recipients)
    out.append("<UserContentInfo>")
    out.extend(_content_part(part) for part in event.parts)
    out.append("</UserContentInfo>")
    out.append(_issuer(issuer, qualified))
    out.append(
        f"<vep:Extensions><vep:DeliveryId>{text(event.delivery_id)}</vep:DeliveryId>"
        f"<vep:DeliveryKind>{text(event.kind)}</vep:DeliveryKind>"
    )
    if event.subject_sha256 is not None:
        out.append(digest_element("vep:SubjectDigest", event.subject_sha256))
    out.extend(
        f'<vep:Extra name="{attribute(name)}">{text(value)}</vep:Extra>'
        for name, value in event.extra
    )
    out.append("</vep:Extensions>")
    out.append(END)
    return "".join(out)


def to_bytes(canonical: str) -> bytes:
    """The stored document: an XML declaration, then the canonical text in UTF-8."""
    return XML_DECLARATION + canonical.encode("utf-8")


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
    "DIGEST_METHOD",
    "END",
    "NS",
    "NS_DECLARATIONS",
    "SCHEMA_FILE",
    "STATEMENTS",
    "VEP_NS",
    "digest_element",
    "event_from_uri",
    "event_uri",
    "parse_safely",
    "render",
    "schema",
    "to_bytes",
    "validate",
    "xml_time",
]
