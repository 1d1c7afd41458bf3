"""Seal evidence: XAdES-B enveloped signature of the provider, then XAdES-T (R6.2, R6.6).

XAdES-B (ETSI EN 319 132-1 §4.3, baseline B-B, EN 319 132-2): :class:`~.xades_b.XadesBSigner`
writes an enveloped ``ds:Signature`` as the last child of ``Evidence``: one reference to the
whole document (URI "" with the enveloped-signature transform), one to the signed
properties (SigningTime, SigningCertificateV2, DataObjectFormat), one to KeyInfo; SHA-256
throughout; the certificate chain in ``ds:X509Data`` and no KeyValue (the certificate is
authoritative). Canonicalisation is inclusive C14N 1.0 on purpose: the SignedProperties
and KeyInfo references have no Transforms element, which XML-DSig (§4.4.3.2) and therefore
xmlsec1 read as inclusive C14N 1.0; the signature's C14N is the same, so every digest is
over one canonical form. The evidence (:func:`.xml.render`) and the signature are written
as that canonical text directly, so a seal builds no XML tree and runs no canonicaliser:
the digests are over the strings written (issue 4 benchmark; see :mod:`.c14n`). Only the
private-key operation runs in a thread for a PKCS#11 key.

XAdES-T (EN 319 132-1 §5.3, B-T): an RFC 3161 token over the digest of the ``ds:
SignatureValue`` element canonicalised with the algorithm named in the time-stamp's own
``ds:CanonicalizationMethod``, placed in ``UnsignedSignatureProperties/SignatureTimeStamp``
as ``EncapsulatedTimeStamp``; that canonical form is written here too
(:func:`signature_value_c14n`). Unsigned properties are outside the signature, so xmlsec1 and
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from signxml.algorithms import CanonicalizationMethod

from ..trust.certs import qc_info
from . import rfc3161
from . import xml as evidence_xml
from .errors import NotQualified, SignerError, TimestampError
from .model import CertRef, EventName, EvidenceEvent, IssuerDetails
from .signer import Signer
from .timestamper import Stamp, TimeStamper
from .xades_b import PendingSignature, XadesBSigner, enveloped

DS = evidence_xml.DS_NS
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
        return (await self.seal_all([event]))[0]

    async def seal_all(self, events: Sequence[EvidenceEvent]) -> list[SealedEvidence]:
        """Evidence for each of ``events`` (those of one step, e.g. a submission's
        SubmissionAcceptance and ContentConsignment), in their order. The signatures are
        made one after the other and their time-stamps asked for together
        (:meth:`.TimeStamper.stamp_all`: one round of requests to an external TSA); a
        task per seal cost more than a local seal's time-stamp (issue 4 benchmark)."""
        self.check_qualified()
        self._check_validity()
        documents = [evidence_xml.render(event, self._issuer, self.qualified) for event in events]
        pending = [self._xades.prepare(document) for document in documents]
        if self._signer.hardware_backed:
            # A real HSM may take tens of milliseconds: keep it off the event loop.
            values = await asyncio.gather(
                *(asyncio.to_thread(self._xades.signature_value, p.signed_info) for p in pending)
            )
        else:
            values = [self._xades.signature_value(p.signed_info) for p in pending]
        signature_values = [base64.b64encode(value).decode("ascii") for value in values]
        digests = [hashlib.sha256(signature_value_c14n(v)).digest() for v in signature_values]
        stamps = await self._timestamper.stamp_all(digests, "sha256")
        return [
            self._finish(*sealed)
            for sealed in zip(
                events, documents, pending, signature_values, digests, stamps, strict=True
            )
        ]

    def _finish(
        self,
        event: EvidenceEvent,
        document: str,
        pending: PendingSignature,
        signature_value: str,
        digest: bytes,
        stamp: Stamp,
    ) -> SealedEvidence:
        """The evidence with its time-stamp, once the token is checked against it."""
        if stamp.hash_name != "sha256" or stamp.imprint != digest:
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
        unsigned = _unsigned_properties(pending.signature_id, stamp.der)
        signed = enveloped(document, pending.element(signature_value, unsigned))
        data = evidence_xml.to_bytes(signed)
        if self._validate:
            # A parse and a schema check: the largest single step of a seal (about as much
            # CPU as the rest with the local TSA; ops/bench/seal.py).
            evidence_xml.validate(data)
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


def signature_value_c14n(signature_value: str) -> bytes:
    """The exclusive C14N (Exc-C14N §3) of ``ds:SignatureValue`` holding the base64
    ``signature_value``: the element uses the ``ds`` prefix only and has no attributes, so
    that declaration is all it carries, wherever the element sits (EN 319 132-1 §5.3)."""
    return f'<ds:SignatureValue xmlns:ds="{DS}">{signature_value}</ds:SignatureValue>'.encode()


def _unsigned_properties(signature_id: str, token: bytes) -> str:
    """``xades:UnsignedProperties/UnsignedSignatureProperties/SignatureTimeStamp`` with the
    token (EN 319 132-1 §5.3), canonical text like the rest of the signature."""
    return (
        "<xades:UnsignedProperties><xades:UnsignedSignatureProperties>"
        f'<xades:SignatureTimeStamp Id="{signature_id}-SignatureTimeStamp">'
        f'<ds:CanonicalizationMethod Algorithm="{TS_C14N.value}"></ds:CanonicalizationMethod>'
        f"<xades:EncapsulatedTimeStamp>{base64.b64encode(token).decode('ascii')}"
        "</xades:EncapsulatedTimeStamp></xades:SignatureTimeStamp>"
        "</xades:UnsignedSignatureProperties></xades:UnsignedProperties>"
    )


__all__ = [
    "EvidenceSealer",
    "NotQualified",
    "SealedEvidence",
    "qualification_problem",
    "signature_value_c14n",
]
