"""RFC 3161 time-stamp tokens, alone (``.tst``/``.tsr`` upload) or inside a signature.

A token is a CMS SignedData over a TSTInfo (RFC 3161 §2.4.2). It is intact when its one
SignerInfo verifies (:mod:`.cmscheck`: message digest over the TSTInfo, signature value,
content type ``id-ct-TSTInfo``) and the messageImprint equals the digest of what it
stamps — when that is known: the signature value for a signature timestamp (ETSI EN 319
122-1 §5.3, EN 319 132-1 §5.3), the byte range of a PDF document timestamp, or the
``content`` given with a token uploaded alone. A token whose imprint could not be compared
says so (``imprint_matches`` None, warning ``imprint_not_checked``).

A qualified timestamp (ETSI EN 319 422 §9.1) declares ``esi4-qtstStatement-1`` in the
TSTInfo extensions; that declaration is reported as ``qualified``. A TSA certificate that
does not match the token's ESS signing-certificate attribute is a warning, not a failure:
the time is proven by the TSA's key, and whose key it is, is a question of trust.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from asn1crypto import cms, core, parser, tsp, x509
from pyhanko.sign.ades.qualified_asn1 import QcStatements

from .cmscheck import PARSE_ERRORS, certificates, check_signer, pem_to_der
from .common import finish, too_large
from .crypto import digest
from .report import Issue, TimestampReport, ValidationReport
from .trust import assess, name_of, summary

_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_QTST_STATEMENT = "0.4.0.19422.1.1"
_QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"
#: how a SignerInfo problem reads for a token
_TOKEN_CODES = {
    "signature_invalid": "timestamp_invalid",
    "digest_mismatch": "timestamp_invalid",
    "signing_certificate_not_found": "timestamp_invalid",
    "malformed_signature": "timestamp_malformed",
    "detached_content_missing": "timestamp_malformed",
}
ImprintOf = Callable[[str], bytes | None]
_SIGNED_TS = {"1.2.840.113549.1.9.16.2.20": "content"}
_UNSIGNED_TS = {
    "1.2.840.113549.1.9.16.2.14": "signature",
    "1.2.840.113549.1.9.16.2.25": "refs",  # CAdES-X type 1 (escTimeStamp)
    "1.2.840.113549.1.9.16.2.26": "refs",  # CAdES-X type 2 (certCRLTimestamp)
    "1.2.840.113549.1.9.16.2.27": "archive",  # archiveTimestampV2
    "0.4.0.1733.2.4": "archive",  # archive-time-stamp-v3 (EN 319 122-1 §5.5.3)
}


def load_token(data: bytes) -> cms.ContentInfo | None:
    """The token of a DER ContentInfo or TimeStampResp, or None if neither holds one."""
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].native == "signed_data" and _is_token(info):
            return info
    except PARSE_ERRORS:
        pass
    try:
        response = tsp.TimeStampResp.load(data)
        token = response["time_stamp_token"]
        # RFC 3161 §2.4.2: only a granted response carries a time-stamp (found in review: a
        # "rejection" wrapped round a real token was taken for the token)
        granted = response["status"]["status"].native in ("granted", "granted_with_mods")
        if granted and isinstance(token, cms.ContentInfo) and _is_token(token):
            return token
    except PARSE_ERRORS:
        pass
    return None


def _is_token(info: cms.ContentInfo) -> bool:
    return bool(info["content"]["encap_content_info"]["content_type"].dotted == _TST_INFO)


def _tst_info_bytes(signed_data: cms.SignedData) -> bytes:
    content = signed_data["encap_content_info"]["content"]
    if isinstance(content, core.ParsableOctetString):
        return bytes(content)
    if isinstance(content, core.OctetString):
        return bytes(content.native)
    return bytes(content.parse(core.OctetString).native)  # an Any: a BER octet string


def _token_issue(issue: Issue) -> Issue:
    if issue.code == "digest_mismatch":
        return Issue(
            "timestamp_invalid",
            "The token's TSTInfo does not match the digest the TSA signed: the token was "
            "altered after it was issued.",
        )
    return Issue(_TOKEN_CODES.get(issue.code, issue.code), issue.message)


def _malformed(kind: str, detail: str) -> TimestampReport:
    return TimestampReport(
        kind=kind,
        intact=False,
        errors=(Issue("timestamp_malformed", f"The time-stamp token cannot be read: {detail}"),),
    )


async def check_token(
    token: cms.ContentInfo,
    kind: str,
    imprint_of: ImprintOf | None,
    anchors: Sequence[x509.Certificate],
    extra_certs: Sequence[x509.Certificate] = (),
) -> TimestampReport:
    """Verify one token; ``imprint_of(algorithm)`` gives the expected imprint, or None."""
    try:
        signed_data = token["content"]
        if token["content_type"].native != "signed_data" or not _is_token(token):
            return _malformed(kind, "not a SignedData over a TSTInfo")
        raw = _tst_info_bytes(signed_data)
        info = tsp.TSTInfo.load(raw)
        moment: datetime = info["gen_time"].native
        imprint = info["message_imprint"]
        algorithm = str(imprint["hash_algorithm"]["algorithm"].native)
        hashed = bytes(imprint["hashed_message"].native)
        signer_infos = list(signed_data["signer_infos"])
    except PARSE_ERRORS as exc:
        return _malformed(kind, str(exc))
    if len(signer_infos) != 1:
        return _malformed(kind, "a token has exactly one SignerInfo (RFC 3161 §2.4.2)")
    certs = certificates(signed_data)
    check = check_signer(
        signer_infos[0], [*certs, *extra_certs], raw, "tst_info", ess_mismatch_is_error=False
    )
    errors = [_token_issue(e) for e in check.errors]
    warnings = list(check.warnings)
    expected = imprint_of(algorithm) if imprint_of is not None else None
    matches = None if expected is None else expected == hashed
    if matches is False:
        errors.append(
            Issue(
                "imprint_mismatch",
                "The token's message imprint is not the digest of what it claims to stamp.",
            )
        )
    elif matches is None:
        warnings.append(
            Issue("imprint_not_checked", "What this token stamps was not compared with it.")
        )
    tsa = summary(check.cert) if check.cert is not None else None
    trust = None
    if check.cert is not None:
        trust = await assess(check.cert, [*certs, *extra_certs], anchors, moment, "timestamp time")
    return TimestampReport(
        kind=kind,
        intact=not errors,
        time=moment,
        tsa_subject=tsa.subject if tsa else None,
        tsa_name=_tsa_name(info),
        serial=_text(lambda: str(info["serial_number"].native)),
        policy=_text(lambda: str(info["policy"].dotted)),
        imprint_algorithm=algorithm,
        imprint_matches=matches,
        qualified=_qualified(info),
        **({"trust": trust} if trust is not None else {}),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def _text(read: Callable[[], str]) -> str | None:
    try:
        return read()
    except PARSE_ERRORS:
        return None


def _tsa_name(info: tsp.TSTInfo) -> str | None:
    try:
        name = info["tsa"]
        if isinstance(name, core.Void):
            return None
        chosen = name.chosen
        return name_of(chosen) if isinstance(chosen, x509.Name) else str(chosen.native)
    except PARSE_ERRORS:
        return None


def _qualified(info: tsp.TSTInfo) -> bool:
    """EN 319 422 §9.1: a qcStatements extension with esi4-qtstStatement-1."""
    try:
        extensions = info["extensions"]
        if isinstance(extensions, core.Void):
            return False
        for ext in extensions:
            if ext["extn_id"].dotted != _QC_STATEMENTS:
                continue
            statements = QcStatements.load(bytes(ext["extn_value"]))
            if any(s["statement_id"].dotted == _QTST_STATEMENT for s in statements):
                return True
    except PARSE_ERRORS:
        return False
    return False


async def signer_timestamps(
    signer_info: cms.SignerInfo,
    certs: Sequence[x509.Certificate],
    content: bytes | None,
    anchors: Sequence[x509.Certificate],
) -> tuple[TimestampReport, ...]:
    """The tokens in a SignerInfo's attributes: the content timestamp (signed) and the
    signature, CAdES-X and archive timestamps (unsigned). The imprint of a signature
    timestamp is the digest of the signature value (EN 319 122-1 §5.3); of a content
    timestamp, of the content; CAdES-X and archive imprints are not recomputed."""
    signature = bytes(signer_info["signature"].native)
    imprints: dict[str, ImprintOf | None] = {
        "signature": lambda algorithm: _digest_or_none(algorithm, signature),
        "content": lambda algorithm: _digest_or_none(algorithm, content),
    }
    found: list[TimestampReport] = []
    for field_name, kinds in (("signed_attrs", _SIGNED_TS), ("unsigned_attrs", _UNSIGNED_TS)):
        attrs = signer_info[field_name]
        if isinstance(attrs, core.Void):
            continue
        for attr in attrs:
            try:
                kind = kinds.get(attr["type"].dotted)
            except PARSE_ERRORS:
                continue
            if kind is None:
                continue
            try:
                values, wrapped = _tokens(attr)
            except PARSE_ERRORS as exc:
                found.append(_malformed(kind, str(exc)))
                continue
            for token in values:
                report = await check_token(token, kind, imprints.get(kind), anchors, certs)
                if wrapped:
                    report = replace(report, warnings=(*report.warnings, _WRAPPED))
                found.append(report)
    return tuple(found)


_WRAPPED = Issue(
    "timestamp_encoding",
    "The token is wrapped in an OCTET STRING instead of being the attribute value "
    "(non-standard encoding, accepted).",
)


def _tokens(attr: cms.CMSAttribute) -> tuple[list[cms.ContentInfo], bool]:
    """The tokens of an attribute; also a token wrapped in an OCTET STRING, as some
    signers write (DSS CAdESDEREncodedTstTest), with a warning."""
    try:
        return [cms.ContentInfo.load(value.dump()) for value in attr["values"]], False
    except PARSE_ERRORS:
        pass
    data, tokens = bytes(attr["values"].contents), []
    while data:
        class_, _, tag, header, contents, trailer = parser.parse(data)
        if class_ != 0 or tag != 4:
            raise ValueError("an attribute value is neither a token nor a wrapped token")
        tokens.append(cms.ContentInfo.load(contents))
        data = data[len(header) + len(contents) + len(trailer) :]
    return tokens, True


def _digest_or_none(algorithm: str, data: bytes | None) -> bytes | None:
    if data is None:
        return None
    try:
        return digest(algorithm, data)
    except ValueError:
        return None


async def validate(
    data: bytes, content: bytes | None = None, anchors: Sequence[x509.Certificate] = ()
) -> ValidationReport:
    """A token uploaded alone; with ``content``, its imprint is compared with it."""
    refused = too_large("timestamp", data)
    if refused is not None:
        return refused
    token = load_token(pem_to_der(data))
    if token is None:
        return finish(
            ValidationReport(
                input_kind="timestamp",
                errors=(Issue("malformed", "Not an RFC 3161 time-stamp token or response."),),
            ),
            data,
            anchors,
        )

    report = await check_token(
        token, "token", lambda algorithm: _digest_or_none(algorithm, content), anchors
    )
    return finish(ValidationReport(input_kind="timestamp", timestamps=(report,)), data, anchors)


__all__ = ["ImprintOf", "check_token", "load_token", "signer_timestamps", "validate"]
