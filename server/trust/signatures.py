"""Verify the subscriber's signature on the contract the server issued (R2.1), as a value.

The subscriber returns either the issued PDF signed with PAdES (ETSI EN 319 142-1) or a
detached CAdES signature (ETSI EN 319 122-1) over the issued bytes. Three questions, in
this order (cheap and local first, the network last):

1. **Intact** (``signature_invalid``): the signature value verifies with the signer
   certificate's key over the signed attributes, and the message digest matches the
   signed bytes (PAdES: the ByteRange). Signed attributes are required (the baseline
   profiles, EN 319 122-1 and EN 319 142-1 §6.3, require content-type, message-digest and
   signing-certificate-v2); weak algorithms (MD5, SHA-1) are refused by pyHanko's policy.
2. **Over the issued document** (``wrong_document``). PAdES: the ByteRange covers the
   whole file except exactly the signature's own /Contents; the file starts with the
   issued bytes and its cross-reference chain runs through theirs; the signature's
   revision is the one right after them and the last one; and that revision rewrites no
   object of the issued document except what adding a signature field needs (a signer's
   update can replace a page's content while the bytes still start with the issued PDF,
   so the prefix alone does not prove what a viewer shows). CAdES: the CMS is detached
   and its message-digest attribute is the digest of the issued bytes. The PAdES
   revision analysis is :mod:`server.trust.pdf_revisions`.
3. **The signer** (:class:`~server.errors.CertificateRefused`): the signer certificate is
   checked by :class:`~server.trust.validation.CertificateChecker` at ``moment`` exactly
   like an authentication certificate (path, validity, OCSP/CRL, key usage, QCStatements).

pyHanko provides the parsing and the cryptography. Its full validators also build a trust
path with their own ValidationContext; trust is our checker's decision, so this module uses
the integrity functions underneath them (``validate_sig_integrity``) and no second path
building or fetching happens.

Exactly one signature is accepted: a PDF with two or more signature values, or a CMS with
two or more SignerInfos, is ``multiple_signatures`` (the contract has one signatory; a
co-signature is a different procedure). Whether the signer is the registering person is
the caller's comparison of ``signer.facts.person_id``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any, Literal, NoReturn

from asn1crypto import cms, core, pem, x509
from cryptography.hazmat.primitives import hashes
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.utils import DEFAULT_ALGORITHM_USAGE_POLICY
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from ..errors import SignatureRefused
from .pdf_revisions import PARSE_ERRORS as _PARSE_ERRORS
from .pdf_revisions import check_coverage, check_signed_revision
from .pdf_revisions import failure_message as _message
from .validation import CertificateCheck, CertificateChecker

#: Larger submissions are refused before parsing (a contract is a few tens of kB).
MAX_SUBMISSION_BYTES = 20 * 1024 * 1024
#: Offsets of at most 15 digits (a petabyte): a longer number is no offset of a file we
#: take, and int() of thousands of digits raises ValueError (a 500 before).
_BYTE_RANGE = re.compile(
    rb"/ByteRange\s*\[\s*(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s*\]"
)
_PDF_SUBFILTERS = frozenset({"/ETSI.CAdES.detached", "/adbe.pkcs7.detached"})


@dataclass(frozen=True)
class SignatureCheck:
    """A verified signature over the issued contract, kept as evidence of R2.1."""

    format: Literal["pades", "cades"]
    signer: CertificateCheck
    #: the signer's claimed time: the signing-time attribute, for PAdES else /M
    signing_time: datetime | None
    digest_algorithm: str
    document_sha256: str  # of the issued bytes, hex

    def as_record(self) -> dict[str, object]:
        """JSON-ready, for the audit trail and the registration's evidence."""
        facts = self.signer.facts
        return {
            "format": self.format,
            "signer": {
                "fingerprint": facts.fingerprint,
                "subject": facts.subject,
                "issuer": facts.issuer,
                "serial": facts.serial,
                "person_id": facts.person_id,
            },
            "check": self.signer.as_record(),
            "signing_time": self.signing_time.isoformat() if self.signing_time else None,
            "digest_algorithm": self.digest_algorithm,
            "document_sha256": self.document_sha256,
        }


@dataclass(frozen=True)
class _Verified:
    """The outcome of steps 1 and 2: whose key signed, with which digest, when (claimed)."""

    format: Literal["pades", "cades"]
    certificate: x509.Certificate
    signing_time: datetime | None
    digest_algorithm: str


def _refuse(reason: str, detail: str, **data: Any) -> NoReturn:
    raise SignatureRefused(reason, detail, **data)


async def verify_signed_contract(
    issued: bytes, submitted: bytes, checker: CertificateChecker, moment: datetime
) -> SignatureCheck:
    """Verify ``submitted`` (PAdES PDF, or detached CAdES in DER or PEM) over ``issued``.

    Raises :class:`~server.errors.SignatureRefused` or, for the signer's certificate,
    :class:`~server.errors.CertificateRefused`.
    """
    if len(submitted) > MAX_SUBMISSION_BYTES:
        _refuse(
            "signature_malformed",
            f"The submission is larger than {MAX_SUBMISSION_BYTES // 2**20} MB.",
            size=len(submitted),
        )
    if submitted.startswith(b"%PDF-"):
        verified = _verify_pades(issued, submitted, moment)
    else:
        verified = _verify_cades(issued, submitted, moment)
    signer = await checker.check(verified.certificate.dump(), moment)
    return SignatureCheck(
        format=verified.format,
        signer=signer,
        signing_time=verified.signing_time,
        digest_algorithm=verified.digest_algorithm,
        document_sha256=hashlib.sha256(issued).hexdigest(),
    )


# --- step 1, shared: the CMS signature value ------------------------------------------


def _verify_cms(
    signed_data: cms.SignedData, digest: bytes, moment: datetime
) -> tuple[x509.Certificate, bool]:
    """The signer certificate, and whether the message digest matches ``digest``.

    Refuses (``signature_invalid``) when the signature value does not verify, the signed
    attributes are missing or inconsistent, or an algorithm is disallowed.
    """
    signer_info = signed_data["signer_infos"][0]
    if signer_info["signed_attrs"] is core.VOID or not len(signer_info["signed_attrs"]):
        _refuse(
            "signature_invalid",
            "The signature has no signed attributes (required by CAdES and PAdES).",
        )
    try:
        cert = generic_cms.extract_certs_for_validation(signed_data).signer_cert
        _check_algorithms(signer_info, cert, moment)
        # RFC 5652 §11.1: the content-type attribute must name the eContentType
        content_type = signed_data["encap_content_info"]["content_type"].native
        intact, valid = generic_cms.validate_sig_integrity(
            signer_info, cert, expected_content_type=content_type, actual_digest=digest
        )
    except _PARSE_ERRORS as exc:  # pyHanko's SignatureValidationError is a ValueError
        _refuse("signature_invalid", "The signature cannot be verified.", check=_message(exc))
    if not valid:
        _refuse(
            "signature_invalid",
            "The signature value does not verify with the signer certificate's key.",
        )
    assert isinstance(cert, x509.Certificate)
    return cert, bool(intact)


def _check_algorithms(signer_info: cms.SignerInfo, cert: x509.Certificate, at: datetime) -> None:
    """pyHanko's default policy: no MD5/SHA-1 digests, key and mechanism consistent."""
    policy = DEFAULT_ALGORITHM_USAGE_POLICY
    mechanism = signer_info["signature_algorithm"]
    digest = signer_info["digest_algorithm"]
    for allowed, name in (
        (policy.signature_algorithm_allowed(mechanism, at, cert.public_key), mechanism),
        (policy.digest_algorithm_allowed(digest, at), digest),
    ):
        if not allowed:
            _refuse(
                "signature_invalid",
                f"The algorithm {name['algorithm'].native} is not allowed.",
                check=str(allowed.failure_reason or ""),
            )


def _digest_name(signer_info: cms.SignerInfo) -> str:
    return str(signer_info["digest_algorithm"]["algorithm"].native)


# --- PAdES ----------------------------------------------------------------------------


def _verify_pades(issued: bytes, submitted: bytes, moment: datetime) -> _Verified:
    try:
        reader = PdfFileReader(BytesIO(submitted))
        signatures = list(reader.embedded_signatures)
    except _PARSE_ERRORS as exc:
        _refuse_unreadable(submitted, exc)
    if not signatures:
        _refuse("no_signature", "The PDF has no signature.")
    if len(signatures) > 1:
        _refuse(
            "multiple_signatures",
            "The PDF has more than one signature; exactly one is expected.",
            count=len(signatures),
        )
    sig: EmbeddedPdfSignature = signatures[0]
    if sig.sig_object_type != "/Sig" or sig.sig_object.get("/SubFilter") not in _PDF_SUBFILTERS:
        _refuse(
            "no_signature",
            "The PDF's only signature field holds no PAdES signature "
            "(/Sig with ETSI.CAdES.detached or adbe.pkcs7.detached).",
            sub_filter=str(sig.sig_object.get("/SubFilter")),
        )

    # step 1: intact
    try:
        sig.compute_integrity_info(skip_diff=True)  # type: ignore[no-untyped-call]
        digest = sig.compute_digest()
    except _PARSE_ERRORS as exc:
        _refuse("signature_invalid", "The signed byte range is not valid.", check=_message(exc))
    cert, intact = _verify_cms(sig.signed_data, digest, moment)
    if not intact:
        _refuse(
            "signature_invalid",
            "The signed bytes of the PDF were changed after signing.",
        )

    # step 2: over exactly the issued document, plus the signature's own update
    check_coverage(sig, submitted)
    if not submitted.startswith(issued):
        _refuse(
            "wrong_document",
            "The signed PDF does not begin with the contract as issued.",
        )
    check_signed_revision(reader, sig, issued)

    try:
        claimed = sig.self_reported_timestamp  # signing-time attribute, else /M
    except _PARSE_ERRORS:
        claimed = None
    return _Verified("pades", cert, claimed, _digest_name(sig.signer_info))


def _refuse_unreadable(submitted: bytes, exc: Exception) -> NoReturn:
    """An unreadable PDF: ``signature_invalid`` when a signature's ByteRange no longer fits
    the file (bytes were inserted or removed after signing: the usual cause, since the
    cross-reference offsets then point astray), else ``signature_malformed``.

    Only the reason of a refusal is chosen here; nothing is ever accepted on this path.
    """
    for match in _BYTE_RANGE.finditer(submitted):
        _, len1, start2, len2 = (int(n) for n in match.groups())
        if (
            start2 + len2 != len(submitted)
            or submitted[len1 : len1 + 1] != b"<"
            or submitted[start2 - 1 : start2] != b">"
        ):
            _refuse(
                "signature_invalid",
                "The PDF was changed after signing: the signed byte range no longer "
                "matches the file.",
                byte_range=[int(n) for n in match.groups()],
                size=len(submitted),
                check=_message(exc),
            )
    _refuse("signature_malformed", "The PDF cannot be read.", check=_message(exc))


# --- CAdES ----------------------------------------------------------------------------


def _load_signed_data(submitted: bytes) -> cms.SignedData:
    """The SignedData of a DER or PEM ContentInfo; refuses anything else as malformed."""
    der = submitted
    try:
        if pem.detect(submitted):
            _, _, der = pem.unarmor(submitted)
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            _refuse(
                "signature_malformed",
                "The CMS is not SignedData.",
                content_type=str(info["content_type"].native),
            )
        signed_data = info["content"]
        signer_infos = signed_data["signer_infos"]
        count = len(signer_infos)
        for signer_info in signer_infos:
            signer_info["signed_attrs"].native  # noqa: B018  (parse now, not mid-check)
    except _PARSE_ERRORS as exc:
        _refuse(
            "signature_malformed",
            "Neither a signed PDF nor a CMS signature (DER or PEM).",
            check=_message(exc),
        )
    if count == 0:
        _refuse("signature_malformed", "The CMS SignedData has no signer.")
    if count > 1:
        _refuse(
            "multiple_signatures",
            "The CMS has more than one signer; exactly one is expected.",
            count=count,
        )
    assert isinstance(signed_data, cms.SignedData)
    return signed_data


def _verify_cades(issued: bytes, submitted: bytes, moment: datetime) -> _Verified:
    signed_data = _load_signed_data(submitted)
    if signed_data["encap_content_info"]["content"] is not core.VOID:
        _refuse(
            "wrong_document",
            "The CMS carries its own content; a detached signature over the issued "
            "contract is expected.",
        )
    signer_info = signed_data["signer_infos"][0]
    digest_algorithm = _digest_name(signer_info)
    try:
        hasher = hashes.Hash(get_pyca_cryptography_hash(digest_algorithm))
    except (*_PARSE_ERRORS, NotImplementedError) as exc:
        _refuse("signature_invalid", "Unsupported digest algorithm.", check=_message(exc))
    hasher.update(issued)
    cert, intact = _verify_cms(signed_data, hasher.finalize(), moment)
    if not intact:
        _refuse(
            "wrong_document",
            "The signature is over other bytes than the contract as issued.",
            digest_algorithm=digest_algorithm,
        )
    signing_time = generic_cms.extract_self_reported_ts(signer_info)
    return _Verified("cades", cert, signing_time, digest_algorithm)


__all__ = ["MAX_SUBMISSION_BYTES", "SignatureCheck", "verify_signed_contract"]
