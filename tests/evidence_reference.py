"""The lxml evidence path that :mod:`server.evidence` used before it wrote canonical text
(issue 4 benchmark): the reference the tests compare the production output with, and the
baseline ``ops/bench/seal.py`` measures against. Not used by the server.

- :func:`build`: the unsigned ``Evidence`` element built with ``etree.SubElement``;
- :class:`LxmlXadesSigner`: the XAdES-B-B template signer (deepcopy of a ``ds:Signature``
  template, lxml C14N 1.0 for every digest and for SignedInfo), with an optional fixed
  signature Id so that a test can reproduce a production signature exactly;
- :class:`LxmlEvidenceSealer`: build, sign, exclusive C14N of ``ds:SignatureValue`` for the
  time-stamp, ``SignatureTimeStamp`` added with lxml, XSD validation of the tree.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from server.evidence import xml as evidence_xml
from server.evidence.errors import TimestampError
from server.evidence.keys import SealKey
from server.evidence.model import CertRef, EvidenceEvent, IssuerDetails, Party
from server.evidence.seal import TS_C14N, SealedEvidence
from server.evidence.signer import Signer
from server.evidence.timestamper import TimeStamper
from server.evidence.xades_b import (
    C14N_URI,
    DESCRIPTION,
    ECDSA_SHA256_URI,
    ENVELOPED_URI,
    MIME_TYPE,
    RSA_SHA256_URI,
    SIGNED_PROPERTIES_TYPE,
)
from server.evidence.xml import (
    DS_NS,
    FORMAT_VERSION,
    NS,
    NSMAP,
    SHA256_URI,
    STATEMENTS,
    VEP_NS,
    XADES_NS,
    XML_NS,
    event_uri,
    xml_time,
)

DS = DS_NS
XADES = XADES_NS


def _e(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _v(tag: str) -> str:
    return f"{{{VEP_NS}}}{tag}"


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
        if part.name is not None:
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


# Positions in the template (fixed by _template); checked once in __init__.
_SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO, _OBJECT = range(4)
_REF_DOCUMENT, _REF_PROPERTIES, _REF_KEY_INFO = 2, 3, 4  # children of SignedInfo
_DIGEST_VALUE = -1  # the last child of a Reference


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{XADES_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _c14n(element: etree._Element) -> bytes:
    """Inclusive C14N 1.0 of ``element`` in its document (inherited namespaces included)."""
    return bytes(etree.tostring(element, method="c14n", exclusive=False, with_comments=False))


def _reference(signed_info: etree._Element, uri: str, **attrs: str) -> etree._Element:
    reference = _sub(signed_info, _ds("Reference"), URI=uri, **attrs)
    return reference


def _digest_method(parent: etree._Element) -> etree._Element:
    return _sub(parent, _ds("DigestMethod"), Algorithm=SHA256_URI)


class LxmlXadesSigner:
    """Signs ``Evidence`` documents with one seal key and chain (XAdES-B-B, enveloped).

    The template is only ever copied, never changed, so one signer serves every seal (and
    threads, for a PKCS#11 key signed off the event loop).
    """

    def __init__(self, key: SealKey, chain: Sequence[x509.Certificate]) -> None:
        if not chain:
            raise ValueError("the seal needs its certificate chain")
        self._key = key
        self._ecdsa = isinstance(key, ec.EllipticCurvePrivateKey)
        if not self._ecdsa and not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the seal key is neither EC nor RSA")
        self._half = (key.key_size + 7) // 8
        self._template = self._build_template(chain)

    def _build_template(self, chain: Sequence[x509.Certificate]) -> etree._Element:
        """The constant ``ds:Signature``; per-evidence values are filled into copies."""
        signature = etree.Element(_ds("Signature"), nsmap=NSMAP)
        signed_info = _sub(signature, _ds("SignedInfo"))
        _sub(signed_info, _ds("CanonicalizationMethod"), Algorithm=C14N_URI)
        method = ECDSA_SHA256_URI if self._ecdsa else RSA_SHA256_URI
        _sub(signed_info, _ds("SignatureMethod"), Algorithm=method)
        document = _reference(signed_info, "")
        transforms = _sub(document, _ds("Transforms"))
        _sub(transforms, _ds("Transform"), Algorithm=ENVELOPED_URI)
        _sub(transforms, _ds("Transform"), Algorithm=C14N_URI)
        for reference in (
            document,
            _reference(signed_info, "", Type=SIGNED_PROPERTIES_TYPE),
            _reference(signed_info, ""),
        ):
            _digest_method(reference)
            _sub(reference, _ds("DigestValue"))
        _sub(signature, _ds("SignatureValue"))
        key_info = _sub(signature, _ds("KeyInfo"))
        x509_data = _sub(key_info, _ds("X509Data"))
        for cert in chain:
            der = cert.public_bytes(Encoding.DER)
            # PEM's line length, as signxml wrote it; whitespace in base64Binary is ignored.
            _sub(x509_data, _ds("X509Certificate"), "\n".join(textwrap.wrap(_b64(der), 64)) + "\n")
        ds_object = _sub(signature, _ds("Object"))
        qualifying = _sub(ds_object, _xades("QualifyingProperties"))
        signed_properties = _sub(qualifying, _xades("SignedProperties"))
        signature_properties = _sub(signed_properties, _xades("SignedSignatureProperties"))
        _sub(signature_properties, _xades("SigningTime"))
        signing_certificate = _sub(signature_properties, _xades("SigningCertificateV2"))
        for cert in chain:  # EN 319 132-1 §5.2.2.2: the signing certificate first
            cert_digest = _sub(_sub(signing_certificate, _xades("Cert")), _xades("CertDigest"))
            _digest_method(cert_digest)
            der = cert.public_bytes(Encoding.DER)
            _sub(cert_digest, _ds("DigestValue"), _b64(hashlib.sha256(der).digest()))
        object_properties = _sub(signed_properties, _xades("SignedDataObjectProperties"))
        data_format = _sub(object_properties, _xades("DataObjectFormat"))
        _sub(data_format, _xades("Description"), DESCRIPTION)
        _sub(data_format, _xades("MimeType"), MIME_TYPE)
        assert signature[_SIGNED_INFO][_REF_KEY_INFO][_DIGEST_VALUE].tag == _ds("DigestValue")
        assert signature[_OBJECT][0][0].tag == _xades("SignedProperties")
        return signature

    def sign(
        self,
        document: etree._Element,
        signing_time: datetime | None = None,
        signature_id: str | None = None,
    ) -> etree._Element:
        """Append the ``ds:Signature`` to ``document`` (its last child) and return it."""
        if len(document) and document[-1].tag == _ds("Signature"):
            raise ValueError("the document is already signed")
        # Reference 1: the enveloped-signature transform removes exactly the signature we
        # are about to append (with no text around it), so C14N of the document now is
        # what the transform chain yields later (XML-DSig §6.6.4).
        document_digest = hashlib.sha256(_c14n(document)).digest()
        signature_id = signature_id or f"Signature-{secrets.token_hex(8).upper()}"
        reference_id = f"{signature_id}-Document"
        properties_id = f"{signature_id}-SignedProperties"
        key_info_id = f"{signature_id}-KeyInfo"
        signature = copy.deepcopy(self._template)
        signature.set("Id", signature_id)
        signed_info = signature[_SIGNED_INFO]
        key_info = signature[_KEY_INFO]
        key_info.set("Id", key_info_id)
        qualifying = signature[_OBJECT][0]
        qualifying.set("Target", f"#{signature_id}")
        signed_properties = qualifying[0]
        signed_properties.set("Id", properties_id)
        when = (signing_time or datetime.now(UTC)).astimezone(UTC)
        signed_properties[0][0].text = when.isoformat(timespec="seconds")
        signed_properties[1][0].set("ObjectReference", f"#{reference_id}")
        document.append(signature)  # from here C14N sees the document's namespaces
        references = (
            (signed_info[_REF_DOCUMENT], "", document_digest),
            (
                signed_info[_REF_PROPERTIES],
                f"#{properties_id}",
                hashlib.sha256(_c14n(signed_properties)).digest(),
            ),
            (
                signed_info[_REF_KEY_INFO],
                f"#{key_info_id}",
                hashlib.sha256(_c14n(key_info)).digest(),
            ),
        )
        for reference, uri, digest in references:
            reference.set("URI", uri)
            reference[_DIGEST_VALUE].text = _b64(digest)
        signed_info[_REF_DOCUMENT].set("Id", reference_id)
        signature[_SIGNATURE_VALUE].text = _b64(self._signature_value(_c14n(signed_info)))
        return signature

    def _signature_value(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(self._half, "big") + s.to_bytes(self._half, "big")
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class LxmlEvidenceSealer:
    """The seal as it was (without the qualification checks, which did not change)."""

    def __init__(
        self,
        signer: Signer,
        timestamper: TimeStamper,
        issuer: IssuerDetails,
        qualified: bool,
        *,
        validate_schema: bool = True,
    ) -> None:
        self._timestamper = timestamper
        self._issuer = issuer
        self.qualified = qualified
        self._validate = validate_schema
        self._xades = LxmlXadesSigner(signer.private_key, signer.certificates)

    async def seal(self, event: EvidenceEvent) -> SealedEvidence:
        """Evidence for ``event``, sealed (XAdES-B) and time-stamped (XAdES-T)."""
        signed = build(event, self._issuer, self.qualified)
        signature = self._xades.sign(signed)
        signature_value = _one(signature, f"{{{DS}}}SignatureValue")
        digest = hashlib.sha256(etree.tostring(signature_value, method="c14n", exclusive=True))
        stamp = await self._timestamper.stamp(digest.digest(), "sha256")
        if stamp.hash_name != "sha256" or stamp.imprint != digest.digest():
            raise TimestampError("the time-stamp token is over another messageImprint")
        # The TimeStamper checked the token (RFC 3161 §2.4.2, its contract: status, nonce,
        # imprint and the TSA's signature for an external TSA; the local TSA made it).
        _add_signature_timestamp(signature, stamp.der)
        if self._validate:
            evidence_xml.validate(signed)
        data = to_bytes(signed)
        return SealedEvidence(
            xml=data,
            evidence_id=event.evidence_id,
            event=event.event,
            event_time=event.event_time,
            sha256=hashlib.sha256(data).hexdigest(),
            timestamp_time=stamp.gen_time,
            qualified=self.qualified,
        )


def _one(root: etree._Element, path: str) -> etree._Element:
    found = root.findall(path)
    if len(found) != 1:
        raise TimestampError(f"expected exactly one {path}")
    element: etree._Element = found[0]
    return element


def _add_signature_timestamp(signature: etree._Element, token: bytes) -> None:
    """``xades:UnsignedProperties/UnsignedSignatureProperties/SignatureTimeStamp``."""
    qualifying = _one(signature, f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties")
    unsigned = etree.SubElement(qualifying, f"{{{XADES}}}UnsignedProperties")
    properties = etree.SubElement(unsigned, f"{{{XADES}}}UnsignedSignatureProperties")
    stamp = etree.SubElement(
        properties,
        f"{{{XADES}}}SignatureTimeStamp",
        Id=f"{signature.get('Id')}-SignatureTimeStamp",
    )
    etree.SubElement(stamp, f"{{{DS}}}CanonicalizationMethod", Algorithm=TS_C14N.value)
    encapsulated = etree.SubElement(stamp, f"{{{XADES}}}EncapsulatedTimeStamp")
    encapsulated.text = base64.b64encode(token).decode("ascii")
