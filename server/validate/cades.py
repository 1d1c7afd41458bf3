"""CAdES (ETSI EN 319 122-1): attached (``.p7m``) or detached (``.p7s`` + content).

Each SignerInfo is verified by :mod:`.cmscheck` over the encapsulated content, or over the
``content`` given for a detached signature (without it the signature is reported, and
``detached_content_missing`` says why it is not intact). Its timestamps are verified by
:func:`.tst.signer_timestamps` (a signature timestamp's imprint is the digest of the
SignerInfo's signature value). Countersignatures (RFC 5652 §11.4) are SignerInfos over
the parent's signature value and are reported as signatures of their own, role
``counter-signature``. :func:`signer_reports` is shared with PAdES.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import cms, core, x509

from .cmscheck import PARSE_ERRORS, certificates, check_signer, pem_to_der
from .common import finish, signing_moment, too_large
from .report import NO_CERTIFICATE, Issue, SignatureReport, ValidationReport
from .trust import assess, summary
from .tst import signer_timestamps

_COUNTER_SIGNATURE = "1.2.840.113549.1.9.6"
_MAX_COUNTER_DEPTH = 4
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


async def signer_reports(
    signer_info: cms.SignerInfo,
    certs: Sequence[x509.Certificate],
    content: bytes | None,
    content_type: str | None,
    anchors: Sequence[x509.Certificate],
    *,
    name: str,
    covers: str,
    role: str = "signature",
    claimed: datetime | None = None,
    depth: int = 0,
) -> list[SignatureReport]:
    """The report of one SignerInfo, followed by those of its countersignatures.

    ``claimed`` is the signing time claimed outside the CMS (a PDF's /M), used when
    there is no signing-time attribute (PAdES baseline forbids it)."""
    check = check_signer(signer_info, list(certs), content, content_type)
    check.signing_time = check.signing_time or claimed
    timestamps = await signer_timestamps(signer_info, certs, content, anchors)
    moment, source = signing_moment(check.signing_time, timestamps)
    trust = NO_CERTIFICATE
    facts = None
    if check.cert is not None:
        trust = await assess(check.cert, certs, anchors, moment, source)
        facts = summary(check.cert)
    report = SignatureReport(
        intact=not check.errors,
        id=name,
        role=role,
        signer_subject=facts.subject if facts else None,
        signer_issuer=facts.issuer if facts else None,
        signer_serial=facts.serial if facts else None,
        signing_time=check.signing_time,
        signature_algorithm=check.algorithm,
        qualified=facts.qc.compliance if facts and facts.qc else None,
        qscd=facts.qc.sscd if facts and facts.qc else None,
        qc_types=facts.qc.types if facts and facts.qc else (),
        trust=trust,
        signed_data=(covers,),
        timestamps=timestamps,
        errors=tuple(check.errors),
        warnings=tuple(check.warnings),
    )
    reports = [report]
    if depth >= _MAX_COUNTER_DEPTH:
        return reports
    signature_value = bytes(signer_info["signature"].native)
    for number, counter in enumerate(_counter_signatures(signer_info), start=1):
        counter_name = f"{name} / counter-signature {number}"
        try:
            if counter is None:
                raise ValueError("not a SignerInfo")
            reports.extend(
                await signer_reports(
                    counter,
                    certs,
                    signature_value,
                    None,  # RFC 5652 §11.4: no content-type attribute in a countersignature
                    anchors,
                    name=counter_name,
                    covers=f"the signature value of {name}",
                    role="counter-signature",
                    depth=depth + 1,
                )
            )
        except PARSE_ERRORS as exc:
            reports.append(_unreadable(counter_name, "counter-signature", exc))
    return reports


def _unreadable(name: str, role: str, exc: Exception) -> SignatureReport:
    issue = Issue("malformed_signature", f"The {role} cannot be read: {exc}")
    return SignatureReport(intact=False, id=name, role=role, errors=(issue,))


def _counter_signatures(signer_info: cms.SignerInfo) -> list[cms.SignerInfo | None]:
    """Each value of each countersignature attribute; None for one that is not a SignerInfo
    (found in review: such a value was skipped, and the signature reported intact)."""
    attrs = signer_info["unsigned_attrs"]
    if isinstance(attrs, core.Void):
        return []
    found: list[cms.SignerInfo | None] = []
    for attr in attrs:
        try:
            if attr["type"].dotted != _COUNTER_SIGNATURE:
                continue
            values = list(attr["values"])
        except PARSE_ERRORS:
            found.append(None)
            continue
        for value in values:
            try:
                counter = cms.SignerInfo.load(value.dump())
                counter["sid"]  # a value of another type fails here, not later
                found.append(counter)
            except PARSE_ERRORS:
                found.append(None)
    return found


def load_signed_data(data: bytes) -> cms.SignedData | None:
    """The SignedData of a DER, PEM or base64 ContentInfo, else None."""
    der = pem_to_der(data)
    if not der.startswith(b"\x30") and _BASE64.match(der[:4096]):
        try:
            der = base64.b64decode(b"".join(der.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            return None
        signed_data = info["content"]
        len(signed_data["signer_infos"])
    except PARSE_ERRORS:
        return None
    return signed_data if isinstance(signed_data, cms.SignedData) else None


def _encapsulated(signed_data: cms.SignedData) -> bytes | None:
    content = signed_data["encap_content_info"]["content"]
    if isinstance(content, core.Void) or content.native is None:
        return None
    if isinstance(content, core.ParsableOctetString):
        return bytes(content)
    if isinstance(content, core.OctetString):
        return bytes(content.native)
    return bytes(content.parse(core.OctetString).native)


async def validate(
    data: bytes, content: bytes | None = None, anchors: Sequence[x509.Certificate] = ()
) -> ValidationReport:
    """Every SignerInfo of a CAdES signature (and its countersignatures)."""
    refused = too_large("cades", data)
    if refused is not None:
        return refused
    signed_data = load_signed_data(data)
    if signed_data is None:
        report = ValidationReport(
            input_kind="cades",
            errors=(Issue("malformed", "Not a CMS SignedData (DER, PEM or base64)."),),
        )
        return finish(report, data, anchors)
    warnings: list[Issue] = []
    try:
        encapsulated = _encapsulated(signed_data)
        content_type = str(signed_data["encap_content_info"]["content_type"].native)
    except PARSE_ERRORS as exc:
        report = ValidationReport(
            input_kind="cades",
            errors=(Issue("malformed", f"The encapsulated content cannot be read: {exc}"),),
        )
        return finish(report, data, anchors)
    mismatch: tuple[Issue, ...] = ()
    if encapsulated is not None and content is not None and content != encapsulated:
        # found in review: the content was set aside with a warning and the exit was 0, as
        # if the signature covered the file the user asked about
        mismatch = (
            Issue(
                "content_mismatch",
                "The signature carries its own content, and it is not the content given.",
            ),
        )
    signed = encapsulated if encapsulated is not None else content
    if encapsulated is not None:
        covers = f"the encapsulated content ({len(encapsulated)} bytes)"
    elif content is not None:
        covers = f"the detached content given ({len(content)} bytes)"
    else:
        covers = "detached content (not given)"
    certs = certificates(signed_data)
    signatures: list[SignatureReport] = []
    for number, signer_info in enumerate(signed_data["signer_infos"], start=1):
        try:
            signatures.extend(
                await signer_reports(
                    signer_info,
                    certs,
                    signed,
                    content_type,
                    anchors,
                    name=f"signer {number}",
                    covers=covers,
                )
            )
        except PARSE_ERRORS as exc:  # found in review: a SignerInfo without sid was a 500
            signatures.append(_unreadable(f"signer {number}", "signature", exc))
    errors = mismatch if signatures else (Issue("no_signature", "The SignedData has no signer."),)
    report = ValidationReport(
        input_kind="cades",
        signatures=tuple(signatures),
        errors=errors,
        warnings=tuple(warnings),
        properties={"content_type": content_type, "detached": encapsulated is None},
    )
    return finish(report, data, anchors)


__all__ = ["load_signed_data", "signer_reports", "validate"]
