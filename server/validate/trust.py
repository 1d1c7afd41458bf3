"""Trust and qualification of a signer's (or a TSA's) certificate, offline (R6.4).

Trust is RFC 5280 path validation by pyhanko-certvalidator to one of the anchors given, at
the moment of signing (ETSI EN 319 102-1 §5.6.2.1: a certificate that has since expired is
judged at the time the signature is proven to exist). Nothing is fetched: no AIA, OCSP or
CRL, because an uploaded file must not make the service contact addresses it names
(server-side request forgery), so revocation is not part of the verdict.

Qualification is what the certificate declares in its QCStatements (EN 319 412-5), read
by :func:`server.trust.certs.qc_info`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from ..errors import CertificateRefused
from ..trust.certs import QcInfo, parse, qc_info, subject_dn
from ..trust.validation import qualified_anchors
from .report import Trust

_NO_REVOCATION = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.NO_CHECK,
        intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK,
    )
)
NO_PATH = "untrusted: no path to an anchor"


@dataclass(frozen=True)
class CertSummary:
    """Who a certificate names and what its QCStatements declare."""

    subject: str
    issuer: str
    serial: str  # hex, as issuers print it
    qc: QcInfo | None


def name_of(name: x509.Name, cert: x509.Certificate | None = None) -> str:
    """RFC 4514 text of a name (of the subject with EN 319 412 labels when ``cert`` is
    given); asn1crypto's rendering when pyca/cryptography cannot read the certificate."""
    with warnings.catch_warnings():  # cryptography warns on over-long attributes
        warnings.simplefilter("ignore")
        try:
            if cert is not None:
                return subject_dn(cert)
        except (ValueError, TypeError, KeyError):
            pass
    try:
        return str(name.human_friendly)
    except (ValueError, TypeError, KeyError):
        return "(unreadable name)"


def summary(cert: x509.Certificate) -> CertSummary:
    """Subject, issuer, serial and QCStatements of ``cert``, however unusual it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, facts = parse(cert.dump())
            return CertSummary(facts.subject, facts.issuer, facts.serial, facts.qc)
        except CertificateRefused:
            pass
    try:
        qc: QcInfo | None = qc_info(cert)
    except (ValueError, TypeError, KeyError):
        qc = None
    return CertSummary(
        name_of(cert.subject, cert), name_of(cert.issuer), format(cert.serial_number, "x"), qc
    )


def _chain_by_name(cert: x509.Certificate, others: Sequence[x509.Certificate]) -> tuple[str, ...]:
    """Best effort when no path was found: follow issuer names through the given certs."""
    chain = [name_of(cert.subject, cert)]
    current, seen = cert, {cert.sha256}
    for _ in range(10):
        parent = next(
            (c for c in others if c.subject == current.issuer and c.sha256 not in seen), None
        )
        if parent is None or current.self_signed != "no":  # asn1crypto: "no"/"maybe"/"yes"
            break
        chain.append(name_of(parent.subject, parent))
        seen.add(parent.sha256)
        current = parent
    return tuple(chain)


async def assess(
    cert: x509.Certificate,
    others: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    moment: datetime,
    moment_source: str,
) -> Trust:
    """Whether ``cert`` chains to an anchor at ``moment`` (through ``others`` if needed)."""
    if not anchors:
        return Trust(
            trusted=False,
            reason=f"{NO_PATH} (no trust anchor configured)",
            chain=_chain_by_name(cert, others),
            moment=moment,
            moment_source=moment_source,
        )
    context = ValidationContext(
        trust_roots=qualified_anchors(anchors),
        other_certs=list(others),
        moment=moment,
        allow_fetching=False,
        revinfo_policy=_NO_REVOCATION,
    )
    reason: str
    try:
        path = await CertificateValidator(cert, validation_context=context).async_validate_path()
    except cv_errors.PathBuildingError:
        reason = NO_PATH
    except (cv_errors.ExpiredError, cv_errors.NotYetValidError):
        reason = (
            f"untrusted: a certificate of the path was not valid on {moment:%Y-%m-%d %H:%M} UTC"
        )
    except cv_errors.DisallowedAlgorithmError as exc:
        reason = f"untrusted: the path uses a disallowed algorithm ({exc})"
    except (cv_errors.PathValidationError, cv_errors.InvalidCertificateError) as exc:
        reason = f"untrusted: the path is not valid ({exc})"
    except (ValueError, TypeError, KeyError) as exc:  # malformed certificate contents
        reason = f"untrusted: the certificate cannot be validated ({exc})"
    else:
        certs = list(path.iter_certs(include_root=True))
        anchor_cert = certs[0]
        return Trust(
            trusted=True,
            anchor=name_of(anchor_cert.subject, anchor_cert),
            chain=tuple(name_of(c.subject, c) for c in reversed(certs)),
            moment=moment,
            moment_source=moment_source,
        )
    return Trust(
        trusted=False,
        reason=reason,
        chain=_chain_by_name(cert, others),
        moment=moment,
        moment_source=moment_source,
    )


__all__ = ["NO_PATH", "CertSummary", "assess", "name_of", "summary"]
