"""The validation report of R6.4: what was checked, against which anchor, at what moment.

Anyone may upload a signed document, a piece of evidence or a timestamp; the answer is a
:class:`ValidationReport`. Three questions are kept apart, as ETSI EN 319 102-1 keeps them:

- **intact** — the cryptography: every signature value verifies with its signer's key over
  exactly the data it claims to cover, every reference digest / message digest matches,
  what is signed can be found (no signature wrapping), and every timestamp token verifies
  with its imprint matching what it stamps. ``ValidationReport.intact`` is the conjunction
  over every signature and timestamp in the input; it is what the CLI's exit code says.
- **trusted** — whether the signer's certificate chains to a trust anchor (the dev PKI
  root, plus any given) at the moment of signing: the time of an intact signature
  timestamp when there is one, else the claimed signing time. Never part of ``intact``.
  No network is used: an upload must not make the service fetch URLs it names, so
  revocation is not checked (the report says so).
- **qualified** — what the signer certificate's QCStatements declare (EN 319 412-5):
  QcCompliance, QcSSCD (QSCD) and QcType. The EU trusted lists are not consulted.

Every problem is an :class:`Issue` with a stable ``code``. ``errors`` make the signature
(or the input) not intact; ``warnings`` do not. Error codes:

input: ``unsupported_format``, ``malformed``, ``hostile_xml`` (DTD / entities),
``too_large``, ``too_deep``, ``no_signature``, ``pdf_unreadable``, ``content_not_used``
(content given that no signature in the input signs), ``content_mismatch`` (content given
that is not the content an enveloping signature carries);
signature: ``signature_invalid``, ``digest_mismatch``, ``signed_data_not_found``,
``detached_content_missing``, ``duplicate_id``, ``signing_certificate_not_found``,
``signing_certificate_mismatch``, ``unsupported_algorithm``, ``unsupported_transform``,
``malformed_signature``, ``byte_range_invalid``, ``document_modified_after_signing``,
``too_large`` (more references than are checked);
timestamp: ``timestamp_invalid``, ``timestamp_malformed``, ``imprint_mismatch``.
Warning codes: ``weak_algorithm``, ``imprint_not_checked``, ``tsa_certificate_mismatch``,
``timestamp_encoding``, ``changes_after_signing``, ``data_object_format_dangling``,
``revocation_not_checked``.

``unsupported_transform`` and ``unsupported_algorithm`` mean the signature could not be
recomputed: it is reported as not intact because nothing was proven, not because a change
was found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

InputKind = Literal["xades", "cades", "pades", "timestamp", "unknown"]


@dataclass(frozen=True)
class Issue:
    """One finding: a stable machine ``code`` and a sentence for people."""

    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Trust:
    """Whether a certificate chains to an anchor at ``moment`` (RFC 5280 path validation).

    ``trusted`` is None only when there is no certificate to assess.
    """

    trusted: bool | None
    anchor: str | None = None
    reason: str | None = None
    #: the certificates from the signer up (subjects), the anchor last when trusted
    chain: tuple[str, ...] = ()
    moment: datetime | None = None
    #: "signature timestamp", "claimed signing time", "timestamp time" or "validation time"
    moment_source: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor,
            "reason": self.reason,
            "chain": list(self.chain),
            "validated_at": _iso(self.moment),
            "validated_at_source": self.moment_source,
        }


NO_CERTIFICATE = Trust(trusted=None, reason="no certificate to assess")


class _Trusted:
    """Shortcuts to a report's :class:`Trust`."""

    trust: Trust

    @property
    def trusted(self) -> bool | None:
        return self.trust.trusted

    @property
    def trust_anchor(self) -> str | None:
        return self.trust.anchor

    @property
    def trust_reason(self) -> str | None:
        return self.trust.reason

    @property
    def chain(self) -> tuple[str, ...]:
        return self.trust.chain


@dataclass(frozen=True)
class TimestampReport(_Trusted):
    """An RFC 3161 time-stamp token and what it stamps."""

    #: "signature" (over the signature value), "content", "archive", "refs",
    #: "document" (PDF document timestamp) or "token" (uploaded alone)
    kind: str
    intact: bool
    time: datetime | None = None
    tsa_subject: str | None = None
    tsa_name: str | None = None
    serial: str | None = None
    policy: str | None = None
    imprint_algorithm: str | None = None
    #: None when there was nothing to compare the imprint with
    imprint_matches: bool | None = None
    qualified: bool | None = None
    trust: Trust = NO_CERTIFICATE
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "intact": self.intact,
            "time": _iso(self.time),
            "tsa_subject": self.tsa_subject,
            "tsa_name": self.tsa_name,
            "serial": self.serial,
            "policy": self.policy,
            "imprint_algorithm": self.imprint_algorithm,
            "imprint_matches": self.imprint_matches,
            "qualified": self.qualified,
            **_trust_json(self.trust),
            "errors": [i.as_json() for i in self.errors],
            "warnings": [i.as_json() for i in self.warnings],
        }


@dataclass(frozen=True)
class SignatureReport(_Trusted):
    """One signature (an XML ds:Signature, a CMS SignerInfo, a PDF signature field)."""

    intact: bool
    #: the signature's own name: XML Id, PDF field name, or its position ("signer 1")
    id: str | None = None
    #: "signature" or "counter-signature"
    role: str = "signature"
    signer_subject: str | None = None
    signer_issuer: str | None = None
    signer_serial: str | None = None
    #: the time the signer claims (signing-time attribute, xades:SigningTime, PDF /M)
    signing_time: datetime | None = None
    signature_algorithm: str | None = None
    #: what the QCStatements declare (EN 319 412-5); None without a certificate
    qualified: bool | None = None
    qscd: bool | None = None
    qc_types: tuple[str, ...] = ()
    trust: Trust = NO_CERTIFICATE
    #: what the signature covers, one line per reference / byte range
    signed_data: tuple[str, ...] = ()
    timestamps: tuple[TimestampReport, ...] = ()
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "intact": self.intact,
            "signer": {
                "subject": self.signer_subject,
                "issuer": self.signer_issuer,
                "serial": self.signer_serial,
            },
            "signing_time": _iso(self.signing_time),
            "signature_algorithm": self.signature_algorithm,
            "qualified": self.qualified,
            "qscd": self.qscd,
            "qc_types": list(self.qc_types),
            **_trust_json(self.trust),
            "signed_data": list(self.signed_data),
            "timestamps": [t.as_json() for t in self.timestamps],
            "errors": [i.as_json() for i in self.errors],
            "warnings": [i.as_json() for i in self.warnings],
        }


@dataclass(frozen=True)
class ValidationReport:
    """The answer to one upload (R6.4)."""

    input_kind: InputKind
    signatures: tuple[SignatureReport, ...] = ()
    #: timestamps that stand alone: an uploaded token, PDF document timestamps
    timestamps: tuple[TimestampReport, ...] = ()
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    #: the moment of validation, the input's SHA-256 and size, the anchors used
    checked_at: datetime | None = None
    input_sha256: str | None = None
    input_size: int | None = None
    anchors: tuple[str, ...] = ()
    #: format facts worth showing (PDF revisions, DSS/LTV contents, ...)
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        """Every signature and every timestamp (theirs included) is intact, and there is at
        least one signature or timestamp."""
        items = [*self.signatures, *self.timestamps]
        nested = [t for s in self.signatures for t in s.timestamps]
        return (
            not self.errors
            and bool(items)
            and all(s.intact for s in self.signatures)
            and all(t.intact for t in [*self.timestamps, *nested])
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` it as is)."""
        return {
            "input_kind": self.input_kind,
            "intact": self.intact,
            "checked_at": _iso(self.checked_at),
            "input_sha256": self.input_sha256,
            "input_size": self.input_size,
            "anchors": list(self.anchors),
            "signatures": [s.as_json() for s in self.signatures],
            "timestamps": [t.as_json() for t in self.timestamps],
            "errors": [i.as_json() for i in self.errors],
            "warnings": [i.as_json() for i in self.warnings],
            "properties": self.properties,
        }

    def as_text(self) -> str:
        """The JSON, indented (for files and logs)."""
        return json.dumps(self.as_json(), indent=2, ensure_ascii=False, default=str)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _trust_json(trust: Trust) -> dict[str, Any]:
    return {"trusted": trust.trusted, "trust": trust.as_json()}


__all__ = [
    "NO_CERTIFICATE",
    "InputKind",
    "Issue",
    "SignatureReport",
    "TimestampReport",
    "Trust",
    "ValidationReport",
]
