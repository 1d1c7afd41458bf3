"""PAdES (ETSI EN 319 142-1): every signature of a PDF, with its ByteRange and what
changed in the document after it.

For each signature field (pyHanko reads the PDF):

1. the ByteRange starts at 0 and leaves out exactly the signature's own /Contents string
   (``byte_range_invalid`` otherwise); the CMS inside is verified over the covered bytes
   by :mod:`.cades` (message digest, signature value, signing certificate, timestamps);
2. later revisions (ISO 32000-1 §7.5.6 incremental updates) are analysed with pyHanko's
   difference analysis: validation data (DSS) and document timestamps are expected, form
   filling and annotations are reported as warnings, and a change of the pages — their
   number or their content streams — makes the signature not intact
   (``document_modified_after_signing``): the document shown is not the one signed.

Document timestamps (/DocTimeStamp, ETSI.RFC3161) are reported as timestamps whose imprint
is the digest of their byte range. The DSS dictionary (LTV data) is reported, and its
certificates are offered for path building, but its OCSP responses and CRLs are not
evaluated. A PDF that cannot be parsed is still checked signature by signature from the
raw ByteRange and /Contents, and is reported as ``pdf_unreadable``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from io import BytesIO

from asn1crypto import cms, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from .cades import signer_reports
from .cmscheck import certificates
from .common import finish, too_large
from .crypto import digest
from .pdfchanges import modifications
from .pdflooks import PARSE_ERRORS, resolve
from .report import Issue, SignatureReport, TimestampReport, ValidationReport
from .tst import check_token

#: Offsets of at most 15 digits (a petabyte): a longer number is no offset of a file we
#: take, and int() of thousands of digits raises ValueError (a 500 before).
_BYTE_RANGE = re.compile(
    rb"/ByteRange\s*\[\s*(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s+(\d{1,15})\s*\]"
)
_CMS_SUBFILTERS = frozenset({"/ETSI.CAdES.detached", "/adbe.pkcs7.detached"})


def _ranges_problem(byte_range: list[int], data: bytes) -> str | None:
    if len(byte_range) != 4 or byte_range[0] != 0:
        return "the ByteRange does not start at the beginning of the file"
    _, length1, start2, length2 = byte_range
    if start2 < length1 or start2 + length2 > len(data):
        return "the ByteRange points outside the file"
    gap = data[length1:start2].strip()
    if not (gap.startswith(b"<") and gap.endswith(b">")) or len(gap) != start2 - length1:
        return "the bytes left out are not exactly the signature's /Contents"
    return None


def _covered(byte_range: list[int], data: bytes) -> bytes:
    start1, length1, start2, length2 = byte_range
    return data[start1 : start1 + length1] + data[start2 : start2 + length2]


def _coverage_line(byte_range: list[int], data: bytes) -> str:
    start1, length1, start2, length2 = byte_range
    whole = "the whole file" if start2 + length2 == len(data) else "an earlier revision"
    return (
        f"bytes {start1}–{start1 + length1} and {start2}–{start2 + length2} of {len(data)} "
        f"({whole}, except the signature itself)"
    )


async def _cms_signature(
    name: str,
    signed_data: cms.SignedData,
    byte_range: list[int],
    data: bytes,
    extra: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    claimed: datetime | None = None,
) -> list[SignatureReport]:
    problem = _ranges_problem(byte_range, data)
    if problem is not None:
        issue = Issue("byte_range_invalid", f"The signature's ByteRange is not valid: {problem}.")
        return [SignatureReport(intact=False, id=name, errors=(issue,))]
    certs = [*certificates(signed_data), *extra]
    reports: list[SignatureReport] = []
    for signer_info in signed_data["signer_infos"]:
        reports.extend(
            await signer_reports(
                signer_info,
                certs,
                _covered(byte_range, data),
                "data",
                anchors,
                name=name,
                covers=_coverage_line(byte_range, data),
                claimed=claimed,
            )
        )
    return reports


async def _document_timestamp(
    sig: EmbeddedPdfSignature,
    data: bytes,
    extra: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> TimestampReport:
    byte_range = [int(n) for n in sig.byte_range]
    problem = _ranges_problem(byte_range, data)
    if problem is not None:
        issue = Issue("byte_range_invalid", f"The timestamp's ByteRange is not valid: {problem}.")
        return TimestampReport(kind="document", intact=False, errors=(issue,))
    covered = _covered(byte_range, data)
    token = cms.ContentInfo({"content_type": "signed_data", "content": sig.signed_data})

    def imprint_of(algorithm: str) -> bytes | None:
        try:
            return digest(algorithm, covered)
        except ValueError:
            return None

    return await check_token(token, "document", imprint_of, anchors, extra)


def _claimed(sig: EmbeddedPdfSignature) -> datetime | None:
    """The signature dictionary's /M (PAdES puts the claimed time there)."""
    try:
        moment = sig.self_reported_timestamp
    except PARSE_ERRORS:
        return None
    return moment if isinstance(moment, datetime) else None


def _dss(reader: PdfFileReader) -> tuple[dict[str, int], list[x509.Certificate]]:
    """What the Document Security Store holds (ETSI EN 319 142-1 §5.4.2), reported only."""
    dss = resolve(reader.root.get("/DSS"))
    if not isinstance(dss, generic.DictionaryObject):
        return {}, []
    entries = {key: resolve(dss.get(key)) or [] for key in ("/Certs", "/OCSPs", "/CRLs", "/VRI")}
    counts = {key.strip("/").lower(): len(value) for key, value in entries.items()}
    certs = []
    for stream in entries["/Certs"]:
        try:
            certs.append(x509.Certificate.load(resolve(stream).data))
        except PARSE_ERRORS:
            continue
    return counts, certs


async def _unreadable(
    data: bytes, exc: Exception, anchors: Sequence[x509.Certificate]
) -> ValidationReport:
    """Check each raw ByteRange's CMS, so a damaged file still says which signature broke."""
    signatures: list[SignatureReport] = []
    for number, match in enumerate(_BYTE_RANGE.finditer(data), start=1):
        byte_range = [int(n) for n in match.groups()]
        gap = data[byte_range[1] : byte_range[2]].strip()
        try:
            info = cms.ContentInfo.load(bytes.fromhex(gap[1:-1].decode("ascii")))
            signed_data = info["content"]
            signed_data["signer_infos"][0]
        except (*PARSE_ERRORS, UnicodeDecodeError):
            issue = Issue("byte_range_invalid", "The ByteRange does not frame a signature.")
            signatures.append(
                SignatureReport(intact=False, id=f"signature {number}", errors=(issue,))
            )
            continue
        signatures.extend(
            await _cms_signature(f"signature {number}", signed_data, byte_range, data, [], anchors)
        )
    issue = Issue(
        "pdf_unreadable",
        f"The PDF structure cannot be read ({exc}); its signatures were checked from their "
        "byte ranges only.",
    )
    return ValidationReport(input_kind="pades", signatures=tuple(signatures), errors=(issue,))


async def validate(
    data: bytes, content: bytes | None = None, anchors: Sequence[x509.Certificate] = ()
) -> ValidationReport:
    """Every signature and document timestamp of a PDF."""
    refused = too_large("pades", data)
    if refused is not None:
        return refused
    # found in review: a warning and exit 0 answered "is FILE signed here?" with yes
    given = (
        (Issue("content_not_used", "A PDF signs itself; the content given is not what it signs."),)
        if content is not None
        else ()
    )
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        embedded = list(reader.embedded_signatures)
        counts, dss_certs = _dss(reader)
    except PARSE_ERRORS as exc:
        return finish(await _unreadable(data, exc, anchors), data, anchors)
    signatures: list[SignatureReport] = []
    timestamps: list[TimestampReport] = []
    for sig in embedded:
        try:
            if sig.sig_object_type == "/DocTimeStamp":
                stamp = await _document_timestamp(sig, data, dss_certs, anchors)
                # what it covers must still be what the pages show (found in review: a
                # page replaced after a document timestamp went unnoticed)
                changed, notes = modifications(sig, reader)
                timestamps.append(
                    replace(
                        stamp,
                        intact=stamp.intact and not changed,
                        errors=(*stamp.errors, *changed),
                        warnings=(*stamp.warnings, *notes),
                    )
                )
                continue
            name = sig.field_name or f"signature {len(signatures) + 1}"
            subfilter = str(sig.sig_object.get("/SubFilter"))
            if subfilter not in _CMS_SUBFILTERS:
                issue = Issue(
                    "unsupported_algorithm", f"The signature format {subfilter} is not supported."
                )
                signatures.append(SignatureReport(intact=False, id=name, errors=(issue,)))
                continue
            byte_range = [int(n) for n in sig.byte_range]
            reports = await _cms_signature(
                name, sig.signed_data, byte_range, data, dss_certs, anchors, _claimed(sig)
            )
        except PARSE_ERRORS as exc:
            issue = Issue("malformed_signature", f"The signature cannot be read: {exc}")
            signatures.append(SignatureReport(intact=False, id=sig.field_name, errors=(issue,)))
            continue
        changed, notes = modifications(sig, reader)
        first = reports[0]
        reports[0] = replace(
            first,
            intact=first.intact and not changed,
            errors=(*first.errors, *changed),
            warnings=(*first.warnings, *notes),
        )
        signatures.extend(reports)
    errors = (
        given if signatures or timestamps else (Issue("no_signature", "The PDF has no signature."),)
    )
    report = ValidationReport(
        input_kind="pades",
        signatures=tuple(signatures),
        timestamps=tuple(timestamps),
        errors=errors,
        properties={"revisions": int(reader.xrefs.total_revisions), "dss": counts},
    )
    return finish(report, data, anchors)


__all__ = ["validate"]
