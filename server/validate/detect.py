"""What an upload is, and the one entry point that validates anything (R6.4).

Detection looks at the bytes, never at a file name or a declared media type:

- a DER ContentInfo: a SignedData over a TSTInfo, or a TimeStampResp, → an RFC 3161
  timestamp; any other SignedData → CAdES (checked first: a ``.p7m`` may carry a PDF);
- ``%PDF-`` in the first kilobyte → PAdES;
- ``<`` after an optional byte-order mark and white space → XAdES / XMLDSig;
- a PEM or base64 ContentInfo → as DER;
- anything else → ``unknown`` (the report's error is ``unsupported_format``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

from asn1crypto import x509

from . import cades, pades, tst, xades
from .cmscheck import pem_to_der
from .common import finish, too_large
from .report import InputKind, Issue, ValidationReport

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


def _der(data: bytes) -> bytes | None:
    der = pem_to_der(data)
    if der.startswith(b"\x30"):
        return der
    if _BASE64.match(der[:4096]):
        try:
            decoded = base64.b64decode(b"".join(der.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        return decoded if decoded.startswith(b"\x30") else None
    return None


def _cms_kind(der: bytes) -> InputKind | None:
    if tst.load_token(der) is not None:
        return "timestamp"
    if cades.load_signed_data(der) is not None:
        return "cades"
    return None


def detect(data: bytes) -> InputKind:
    """The kind of ``data``, from its bytes alone (DER first: a .p7m may carry a PDF)."""
    if data.startswith(b"\x30"):
        kind = _cms_kind(data)
        if kind is not None:
            return kind
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pades"
    if data.startswith(_BOMS) or head.startswith(b"<"):
        return "xades"
    if b"%PDF-" in head:  # ISO 32000-1 §7.5.2 tolerates bytes before the header
        return "pades"
    der = _der(data)
    return (_cms_kind(der) if der is not None else None) or "unknown"


async def validate(
    data: bytes, content: bytes | None = None, anchors: Sequence[x509.Certificate] = ()
) -> ValidationReport:
    """Validate whatever ``data`` is; ``content`` is the detached data a signature or a
    timestamp covers; ``anchors`` are the trust anchors (none: nothing is trusted)."""
    refused = too_large("unknown", data)
    if refused is not None:
        return refused
    kind = detect(data)
    if kind == "pades":
        return await pades.validate(data, content, anchors)
    if kind == "xades":
        return await xades.validate(data, content, anchors)
    if kind == "cades":
        return await cades.validate(data, content, anchors)
    if kind == "timestamp":
        der = _der(data)
        return await tst.validate(der if der is not None else data, content, anchors)
    report = ValidationReport(
        input_kind="unknown",
        errors=(
            Issue(
                "unsupported_format",
                "Not a signed PDF, an XML signature, a CMS signature or an RFC 3161 timestamp.",
            ),
        ),
    )
    return finish(report, data, anchors)


__all__ = ["detect", "validate"]
