"""What every format's report carries: the moment, the input's digest, the anchors used."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from asn1crypto import x509

from .report import InputKind, Issue, TimestampReport, ValidationReport
from .trust import name_of

#: Larger inputs are refused before parsing (R6.4 is an upload; a signed PDF is far smaller).
MAX_INPUT_BYTES = 20 * 1024 * 1024

REVOCATION_NOT_CHECKED = Issue(
    "revocation_not_checked",
    "Revocation (OCSP/CRL) was not checked: the validation tool fetches nothing from the network.",
)


def finish(
    report: ValidationReport, data: bytes, anchors: Sequence[x509.Certificate]
) -> ValidationReport:
    """``report`` with the validation moment, the input's SHA-256 and size, the anchors."""
    has_certificates = any(s.trust.trusted is not None for s in report.signatures) or any(
        t.trust.trusted is not None for t in report.timestamps
    )
    warnings = report.warnings
    if has_certificates and REVOCATION_NOT_CHECKED not in warnings:
        warnings = (*warnings, REVOCATION_NOT_CHECKED)
    return replace(
        report,
        warnings=warnings,
        checked_at=datetime.now(UTC),
        input_sha256=hashlib.sha256(data).hexdigest(),
        input_size=len(data),
        anchors=tuple(name_of(a.subject, a) for a in anchors),
    )


def signing_moment(
    claimed: datetime | None, timestamps: Sequence[TimestampReport]
) -> tuple[datetime, str]:
    """When to judge the signer's certificate (EN 319 102-1 §5.6.2.1): the earliest intact
    signature timestamp, else the claimed signing time, else now."""
    proven = [t.time for t in timestamps if t.kind == "signature" and t.intact and t.time]
    if proven:
        return min(proven), "signature timestamp"
    if claimed is not None:
        return claimed, "claimed signing time"
    return datetime.now(UTC), "validation time"


def too_large(kind: InputKind, data: bytes) -> ValidationReport | None:
    """A report refusing ``data`` when it is over :data:`MAX_INPUT_BYTES`, else None."""
    if len(data) <= MAX_INPUT_BYTES:
        return None
    return ValidationReport(
        input_kind=kind,
        errors=(Issue("too_large", f"The input is larger than {MAX_INPUT_BYTES} bytes."),),
        input_size=len(data),
    )


__all__ = ["MAX_INPUT_BYTES", "REVOCATION_NOT_CHECKED", "finish", "signing_moment", "too_large"]
