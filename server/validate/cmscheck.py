"""One CMS SignerInfo, verified (RFC 5652 §5.4–5.6, ETSI EN 319 122-1 §5.2).

Shared by CAdES, PAdES and RFC 3161 tokens. For one SignerInfo:

1. the signer certificate is the one its ``sid`` names among the SignedData certificates;
2. with signed attributes: the content-type attribute names the eContentType (absent in
   a countersignature, RFC 5652 §11.4), the message-digest attribute equals the digest
   of the content, and the signature value verifies over the DER of the signed
   attributes; without them the signature is over the content digest itself;
3. the ESS signing-certificate(-v2) attribute (RFC 5035), when present, names that
   certificate: its first ESSCertID's hash must match.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import cms, core, pem, tsp, x509
from pyhanko.sign.general import check_ess_certid, match_issuer_serial

from .crypto import WEAK_DIGESTS, SignatureCheckError, cms_algorithm_name, digest, verify_cms
from .report import Issue

PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)


@dataclass
class SignerCheck:
    """What step 1–3 found for one SignerInfo (mutable while it is being built)."""

    cert: x509.Certificate | None = None
    algorithm: str | None = None
    signing_time: datetime | None = None
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)


def pem_to_der(data: bytes) -> bytes:
    """DER from a PEM block (``-----BEGIN PKCS7-----``, ``CMS``, ...), else ``data``."""
    if pem.detect(data):
        try:
            return bytes(pem.unarmor(data)[2])
        except ValueError:
            return data
    return data


def certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    """The X.509 certificates carried in the SignedData (others are ignored)."""
    found: list[x509.Certificate] = []
    try:
        for choice in signed_data["certificates"] or ():
            if choice.name == "certificate":
                found.append(choice.chosen)
    except PARSE_ERRORS:
        pass
    return found


def signer_certificate(
    signer_info: cms.SignerInfo, certs: list[x509.Certificate]
) -> x509.Certificate | None:
    sid = signer_info["sid"]
    for cert in certs:
        try:
            if sid.name == "issuer_and_serial_number":
                if match_issuer_serial(sid.chosen, cert):
                    return cert
            elif cert.key_identifier == sid.chosen.native:
                return cert
        except PARSE_ERRORS:
            continue
    return None


def signer_der(signature: bytes) -> bytes | None:
    """The DER of the carried certificate a CMS signature's (first) SignerInfo names, if it
    carries it: what pinning a seal compares (``verify-export``, ``verify-audit``)."""
    try:
        signed = cms.ContentInfo.load(signature)["content"]
        found = signer_certificate(signed["signer_infos"][0], certificates(signed))
    except PARSE_ERRORS:
        return None
    return None if found is None else bytes(found.dump())


def attributes(attrs: cms.CMSAttributes, oid: str) -> Iterator[core.Asn1Value]:
    """The values of the attributes with that OID, skipping unparseable others."""
    if attrs is None or isinstance(attrs, core.Void):
        return
    for attr in attrs:
        try:
            if attr["type"].dotted != oid:
                continue
        except PARSE_ERRORS:
            continue
        yield from attr["values"]


def signing_time(signer_info: cms.SignerInfo) -> datetime | None:
    try:
        for value in attributes(signer_info["signed_attrs"], "1.2.840.113549.1.9.5"):
            moment = value.native
            return moment if isinstance(moment, datetime) else None
    except PARSE_ERRORS:
        return None
    return None


def check_signer(
    signer_info: cms.SignerInfo,
    certs: list[x509.Certificate],
    content: bytes | None,
    expected_content_type: str | None,
    *,
    ess_mismatch_is_error: bool = True,
) -> SignerCheck:
    """Steps 1–3 over ``content`` (None: detached and not given)."""
    check = SignerCheck()
    try:
        check.algorithm = cms_algorithm_name(signer_info)
        digest_name = str(signer_info["digest_algorithm"]["algorithm"].native)
        signed_attrs = signer_info["signed_attrs"]
        has_attrs = not isinstance(signed_attrs, core.Void) and len(signed_attrs) > 0
    except PARSE_ERRORS as exc:
        check.errors.append(Issue("malformed_signature", f"The SignerInfo cannot be read: {exc}"))
        return check
    check.signing_time = signing_time(signer_info)
    check.cert = signer_certificate(signer_info, certs)
    if check.cert is None:
        check.errors.append(
            Issue(
                "signing_certificate_not_found",
                "The signer's certificate is not in the signature; it cannot be verified.",
            )
        )
        return check
    if digest_name in WEAK_DIGESTS:
        check.warnings.append(
            Issue("weak_algorithm", f"The digest algorithm {digest_name} is no longer secure.")
        )
    if content is None:
        check.errors.append(
            Issue(
                "detached_content_missing",
                "The signature is detached and the signed content was not given; the "
                "signed data cannot be checked.",
            )
        )
        return check
    try:
        content_digest = digest(digest_name, content)
    except ValueError as exc:
        check.errors.append(Issue("unsupported_algorithm", str(exc)))
        return check
    if has_attrs:
        _check_attributes(check, signer_info, content_digest, expected_content_type)
        signed = signer_info["signed_attrs"].untag().dump()
    else:
        signed = content_digest
    try:
        verify_cms(signer_info, check.cert, signed)
    except SignatureCheckError as exc:
        check.errors.append(Issue(exc.code, exc.message))
    if has_attrs:
        _check_ess(check, signer_info, ess_mismatch_is_error)
    return check


def _check_attributes(
    check: SignerCheck,
    signer_info: cms.SignerInfo,
    content_digest: bytes,
    expected_content_type: str | None,
) -> None:
    attrs = signer_info["signed_attrs"]
    try:
        digests = [v.native for v in attributes(attrs, "1.2.840.113549.1.9.4")]
        types = [v.dotted for v in attributes(attrs, "1.2.840.113549.1.9.3")]
    except PARSE_ERRORS as exc:
        check.errors.append(Issue("malformed_signature", f"Unreadable signed attributes: {exc}"))
        return
    if len(digests) != 1:
        check.errors.append(
            Issue("malformed_signature", "There must be exactly one message-digest attribute.")
        )
    elif digests[0] != content_digest:
        check.errors.append(
            Issue(
                "digest_mismatch",
                "The message digest does not match the signed content: the content was "
                "changed after signing, or it is not the content that was signed.",
            )
        )
    if expected_content_type is not None and types != [
        cms.ContentType.unmap(expected_content_type)
    ]:
        check.errors.append(
            Issue("malformed_signature", "The content-type attribute does not name the content.")
        )


def _check_ess(check: SignerCheck, signer_info: cms.SignerInfo, as_error: bool) -> None:
    assert check.cert is not None
    attrs = signer_info["signed_attrs"]
    try:
        refs: list[tsp.ESSCertID | tsp.ESSCertIDv2] = [
            value["certs"][0]
            for oid in ("1.2.840.113549.1.9.16.2.47", "1.2.840.113549.1.9.16.2.12")
            for value in attributes(attrs, oid)
        ]
        matches = [check_ess_certid(check.cert, ref) for ref in refs]
    except (*PARSE_ERRORS, NotImplementedError) as exc:
        check.errors.append(
            Issue("malformed_signature", f"Unreadable signing-certificate attribute: {exc}")
        )
        return
    if matches and not all(matches):
        message = (
            "The signed signing-certificate attribute names another certificate than the "
            "one whose key verifies the signature."
        )
        if as_error:
            check.errors.append(Issue("signing_certificate_mismatch", message))
        else:
            check.warnings.append(Issue("tsa_certificate_mismatch", message))


__all__ = [
    "PARSE_ERRORS",
    "SignerCheck",
    "attributes",
    "certificates",
    "check_signer",
    "pem_to_der",
    "signer_certificate",
    "signer_der",
    "signing_time",
]
