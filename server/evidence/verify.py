"""Verify sealed evidence against given anchors, without trusting anything in the document.

Two independent checks, each reported on its own (R6.4):
- the XAdES signature (signxml ``XAdESVerifier``): the three references, the signed
  properties' SigningCertificateV2, and the certificate chain to the caller's anchors —
  never signxml's default certifi bundle, which would trust any web-PKI certificate;
- the XAdES-T SignatureTimeStamp (ETSI EN 319 132-1 §5.3): the RFC 3161 token's own
  signature and chain, and its messageImprint against the digest of the canonicalised
  ``ds:SignatureValue`` recomputed here.

When the time-stamp holds, the certificates are validated at its genTime: the token proves
the signature existed then, so evidence stays verifiable after the seal certificate expires
(revocation is not checked here: that needs the B-LT/B-LTA validation data, a later issue).
Parsing resolves no entities, loads no DTD and uses no network; the facts reported (event,
evidence id) are read from what the signature actually covers.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml.algorithms import CanonicalizationMethod
from signxml.exceptions import InvalidInput, SignXMLException
from signxml.util import X509CertChainVerifier
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from ..trust.certs import parse
from . import rfc3161
from . import xml as evidence_xml
from .errors import TimestampError

DS = evidence_xml.DS_NS
XADES = evidence_xml.XADES_NS
_STAMP = (
    f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties/{{{XADES}}}UnsignedProperties/"
    f"{{{XADES}}}UnsignedSignatureProperties/{{{XADES}}}SignatureTimeStamp"
)
_C14N_EXCLUSIVE = {
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value: True,
    CanonicalizationMethod.CANONICAL_XML_1_0.value: False,
}


@dataclass(frozen=True)
class EvidenceVerification:
    """The outcome of verifying one evidence document (a value; nothing raises)."""

    intact: bool  # the seal verifies and chains to an anchor
    signer_subject: str | None
    event: str | None  # the EN 319 522 event name, e.g. "SubmissionAcceptance"
    evidence_id: str | None
    timestamp_time: datetime | None
    timestamp_intact: bool  # the TSA's signature verifies and chains to an anchor
    timestamp_imprint_matches: bool  # the token is over this signature's value
    qualified: bool | None  # what the evidence states about itself (R6.6)
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.intact and self.timestamp_intact and self.timestamp_imprint_matches


class _AnchorChainVerifier(X509CertChainVerifier):
    """signxml's chain check over the caller's anchors instead of a PEM file."""

    def __init__(self, anchors: list[x509.Certificate], **kwargs: Any) -> None:
        # The file name is never opened: ``store`` below replaces the file-based store.
        super().__init__(ca_pem_file="<anchors in memory>", **kwargs)  # type: ignore[no-untyped-call]
        self._anchors = anchors

    @property
    def store(self) -> x509.verification.Store:
        return x509.verification.Store(self._anchors)


class _AnchoredVerifier(XAdESVerifier):
    def __init__(self, anchors: list[x509.Certificate]) -> None:
        super().__init__()
        self._anchors = anchors

    def get_cert_chain_verifier(self, ca_pem_file: Any, ee_policy: Any, ca_policy: Any) -> Any:
        return _AnchorChainVerifier(
            self._anchors,
            verification_time=self._get_cert_verification_time(),  # type: ignore[no-untyped-call]
            ee_policy=ee_policy,
            ca_policy=ca_policy,
        )


@dataclass(frozen=True)
class _Stamp:
    time: datetime | None
    intact: bool
    imprint_matches: bool


def _check_timestamp(
    signature: etree._Element, anchors: list[x509.Certificate], errors: list[str]
) -> _Stamp:
    stamps = signature.findall(_STAMP)
    if len(stamps) != 1:
        errors.append(f"timestamp: expected one SignatureTimeStamp, found {len(stamps)}")
        return _Stamp(None, False, False)
    stamp = stamps[0]
    method = stamp.find(f"{{{DS}}}CanonicalizationMethod")
    algorithm = (
        method.get("Algorithm", "")
        if method is not None
        else CanonicalizationMethod.CANONICAL_XML_1_0.value  # EN 319 132-1 default
    )
    encapsulated = stamp.findall(f"{{{XADES}}}EncapsulatedTimeStamp")
    value = signature.findall(f"{{{DS}}}SignatureValue")
    if algorithm not in _C14N_EXCLUSIVE or len(encapsulated) != 1 or len(value) != 1:
        errors.append("timestamp: unsupported canonicalisation or malformed SignatureTimeStamp")
        return _Stamp(None, False, False)
    c14n = etree.tostring(value[0], method="c14n", exclusive=_C14N_EXCLUSIVE[algorithm])
    try:
        info = rfc3161.parse(base64.b64decode(encapsulated[0].text or "", validate=True))
        matches = rfc3161.digest(c14n, info.hash_name) == info.imprint
    except (binascii.Error, TimestampError) as exc:
        errors.append(f"timestamp: {exc}")
        return _Stamp(None, False, False)
    if not matches:
        errors.append("timestamp: the token is not over this signature's SignatureValue")
    try:
        rfc3161.verify_signature(info)
        rfc3161.verify_chain(info, anchors)
    except TimestampError as exc:
        errors.append(f"timestamp: {exc}")
        return _Stamp(None, False, matches)
    # The token's time vouches for this signature only when it is over this signature.
    return _Stamp(info.gen_time if matches else None, True, matches)


def _signer_subject(signature: etree._Element, public_pem: Any) -> str | None:
    for node in signature.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
        der = base64.b64decode(node.text or "")
        cert = x509.load_der_x509_certificate(der)
        spki = cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        if spki == public_pem:
            return parse(der)[1].subject  # the spelling authentication uses
    return None


def _facts(signed: etree._Element) -> tuple[str | None, str | None, bool | None]:
    ns = {"e": evidence_xml.NS, "vep": evidence_xml.VEP_NS}
    uri = signed.findtext("e:ERDSEventId", namespaces=ns)
    try:
        event = evidence_xml.event_from_uri(uri).value if uri else None
    except ValueError:
        event = None
    qualified = signed.findtext("e:EvidenceIssuerDetails/vep:Qualified", namespaces=ns)
    claim = None if qualified is None else qualified.strip() in ("true", "1")
    return event, signed.findtext("e:EvidenceIdentifier", namespaces=ns), claim


def verify_evidence(xml: bytes, anchors: list[x509.Certificate]) -> EvidenceVerification:
    """Verify a sealed evidence document; every problem found is listed in ``errors``."""
    errors: list[str] = []
    failed = EvidenceVerification(False, None, None, None, None, False, False, None)
    try:
        root = evidence_xml.parse_safely(xml)
    except (etree.XMLSyntaxError, ValueError) as exc:
        return _with(failed, [f"xml: {exc}"])
    signatures = root.findall(f".//{{{DS}}}Signature")
    if root.tag != f"{{{evidence_xml.NS}}}Evidence" or len(signatures) != 1:
        return _with(failed, ["xml: not an Evidence with exactly one ds:Signature"])
    signature = signatures[0]
    if signature.getparent() is not root or root[-1] is not signature:
        errors.append("signature: ds:Signature is not the last child of Evidence")
    if not anchors:
        return _with(failed, ["signature: no trust anchors given"])

    stamp = _check_timestamp(signature, anchors, errors)
    config = XAdESSignatureConfiguration(verification_time=stamp.time)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    intact = False
    subject = event = evidence_id = None
    claim: bool | None = None
    try:
        results = _AnchoredVerifier(anchors).verify(xml, expect_config=config, parser=parser)
        document = results[0]
        reference = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
        if reference is None or reference.get("URI") != "" or document.signed_xml is None:
            raise InvalidInput("the first reference does not cover the whole document")
        if document.signed_xml.tag != root.tag:
            raise InvalidInput("the signed document is not an Evidence")
        intact = not any(e.startswith("signature:") for e in errors)
        subject = _signer_subject(signature, document.signature_key)
        event, evidence_id, claim = _facts(document.signed_xml)
    except SignXMLException as exc:
        errors.append(f"signature: {type(exc).__name__}: {exc}")
    except (etree.LxmlError, ValueError) as exc:
        errors.append(f"signature: malformed: {exc}")
    return EvidenceVerification(
        intact=intact,
        signer_subject=subject,
        event=event,
        evidence_id=evidence_id,
        timestamp_time=stamp.time,
        timestamp_intact=stamp.intact,
        timestamp_imprint_matches=stamp.imprint_matches,
        qualified=claim,
        errors=tuple(errors),
    )


def _with(result: EvidenceVerification, errors: list[str]) -> EvidenceVerification:
    return replace(result, errors=tuple(errors))


__all__ = ["EvidenceVerification", "verify_evidence"]
