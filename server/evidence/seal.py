"""Seal evidence: XAdES-B enveloped signature of the provider, then XAdES-T (R6.2, R6.6).

XAdES-B (ETSI EN 319 132-1 §4.3, baseline B-B, EN 319 132-2): :class:`~.xades_b.XadesBSigner`
writes an enveloped ``ds:Signature`` as the last child of ``Evidence``: one reference to the
whole document (URI "" with the enveloped-signature transform), one to the signed
properties (SigningTime, SigningCertificateV2, DataObjectFormat), one to KeyInfo; SHA-256
throughout; the certificate chain in ``ds:X509Data`` and no KeyValue (the certificate is
authoritative). It fills a template built once per sealer (signxml's generic signer, used
before, rebuilt all of it per seal). Canonicalisation is inclusive C14N 1.0 on purpose: the
SignedProperties and KeyInfo references have no Transforms element, which XML-DSig
(§4.4.3.2) and therefore xmlsec1 read as inclusive C14N 1.0; the signature's C14N is the
same, so every digest is over one canonical form.

XAdES-T (EN 319 132-1 §5.3, B-T): an RFC 3161 token over the digest of the ``ds:
SignatureValue`` element canonicalised with the algorithm named in the time-stamp's own
``ds:CanonicalizationMethod``, placed in ``UnsignedSignatureProperties/SignatureTimeStamp``
as ``EncapsulatedTimeStamp``. Unsigned properties are outside the signature, so xmlsec1 and
signxml still verify it; :mod:`server.evidence.verify` checks the token separately.

R6.6, fail closed: in qualified mode the sealer refuses (:class:`NotQualified`) unless the
seal certificate declares QcCompliance with QcType eseal (EN 319 412-5), the key is in a
hardware PKCS#11 token (not a file, not SoftHSM), and every time-stamp token is qualified.
Development output says in words that it is not qualified (:data:`xml.STATEMENTS`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod

from ..trust.certs import qc_info
from . import rfc3161
from . import xml as evidence_xml
from .errors import NotQualified, SignerError, TimestampError
from .model import CertRef, EventName, EvidenceEvent, IssuerDetails
from .signer import Signer
from .timestamper import TimeStamper
from .xades_b import XadesBSigner

DS = evidence_xml.DS_NS
XADES = evidence_xml.XADES_NS
#: The time-stamp input: exclusive C14N does not depend on where the element sits.
TS_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
QCT_ESEAL = "qct_eseal"


@dataclass(frozen=True)
class SealedEvidence:
    """One issued evidence: the sealed XML and the facts a store indexes it by."""

    xml: bytes
    evidence_id: str
    event: EventName
    event_time: datetime
    sha256: str  # of ``xml``, hex
    timestamp_time: datetime  # genTime of the SignatureTimeStamp
    qualified: bool


def qualification_problem(signer: Signer) -> NotQualified | None:
    """Why this seal is not qualified (R6.6), or None; the TSA is checked per token."""
    leaf = asn1_x509.Certificate.load(signer.certificates[0].public_bytes(Encoding.DER))
    qc = qc_info(leaf)
    if not qc.compliance or QCT_ESEAL not in qc.types:
        return NotQualified(
            "seal_certificate",
            "the seal certificate lacks QcCompliance with QcType eseal (EN 319 412-5)",
        )
    if not signer.hardware_backed:
        return NotQualified(
            "seal_key", f"the seal key is not in an HSM ({signer.token_description})"
        )
    if getattr(signer, "software_token", False):
        return NotQualified(
            "seal_key", f"SoftHSM is a software token, not an HSM ({signer.token_description})"
        )
    return None


class EvidenceSealer:
    """Builds, seals and time-stamps evidence; one per application (R6.1, R6.2)."""

    def __init__(
        self,
        signer: Signer,
        timestamper: TimeStamper,
        issuer: IssuerDetails,
        qualified: bool,
        *,
        validate_schema: bool = True,
    ) -> None:
        certificates = signer.certificates
        if issuer.seal_certificate != CertRef.of(certificates[0]):
            raise ValueError("IssuerDetails.seal_certificate is not the signer's certificate")
        self._signer = signer
        self._timestamper = timestamper
        self._issuer = issuer
        self.qualified = qualified
        self._validate = validate_schema
        self._chain = list(certificates)
        self._xades = XadesBSigner(signer.private_key, self._chain)
        problem = qualification_problem(signer) if qualified else None
        self._refusal = (problem.component, problem.detail) if problem else None
        if self._validate:
            evidence_xml.schema()  # load now: a missing schema stops the start, not a seal

    def check_qualified(self) -> None:
        """Raise :class:`NotQualified` now if the seal cannot be qualified (start-up check)."""
        if self._refusal is not None:
            raise NotQualified(*self._refusal)

    async def seal(self, event: EvidenceEvent) -> SealedEvidence:
        """Evidence for ``event``, sealed (XAdES-B) and time-stamped (XAdES-T)."""
        self.check_qualified()
        self._check_validity()
        signed = evidence_xml.build(event, self._issuer, self.qualified)
        if self._signer.hardware_backed:
            # A real HSM may take tens of milliseconds: keep it off the event loop.
            signature = await asyncio.to_thread(self._xades.sign, signed)
        else:
            signature = self._xades.sign(signed)
        signature_value = _one(signature, f"{{{DS}}}SignatureValue")
        digest = hashlib.sha256(etree.tostring(signature_value, method="c14n", exclusive=True))
        stamp = await self._timestamper.stamp(digest.digest(), "sha256")
        if stamp.hash_name != "sha256" or stamp.imprint != digest.digest():
            raise TimestampError("the time-stamp token is over another messageImprint")
        # The TimeStamper checked the token (RFC 3161 §2.4.2, its contract: status, nonce,
        # imprint and the TSA's signature for an external TSA; the local TSA made it).
        if self.qualified and not stamp.qualified:
            tsa = rfc3161.parse(stamp.der).signer.subject.rfc4514_string()
            raise NotQualified(
                "tsa",
                f"the time-stamp of {tsa} is not qualified "
                "(no EN 319 422 qtstStatement, no QcCompliance)",
            )
        _add_signature_timestamp(signature, stamp.der)
        if self._validate:
            evidence_xml.validate(signed)
        data = evidence_xml.to_bytes(signed)
        return SealedEvidence(
            xml=data,
            evidence_id=event.evidence_id,
            event=event.event,
            event_time=event.event_time,
            sha256=hashlib.sha256(data).hexdigest(),
            timestamp_time=stamp.gen_time,
            qualified=self.qualified,
        )

    def _check_validity(self) -> None:
        leaf = self._chain[0]
        now = datetime.now(UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise SignerError(
                f"the seal certificate is outside its validity period "
                f"({leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
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


__all__ = ["EvidenceSealer", "NotQualified", "SealedEvidence", "qualification_problem"]
