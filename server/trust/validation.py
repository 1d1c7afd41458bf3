"""Certificate path validation for authentication (R1.1–R1.2), as a value.

pyhanko-certvalidator builds and validates the path to a configured anchor, checks the
validity period and fetches revocation data (OCSP, with CRL as the alternative: ETSI
TS 119 172 "eithercheck"). The outcome is a :class:`CertificateCheck` that says what was
checked, against which anchor, at what moment, and from which revocation source; a
refusal is a :class:`~server.errors.CertificateRefused` with a stable reason.

Revocation policy (``VEP_REVOCATION``):
- ``require``: the leaf and every CA below the anchor must have fresh OCSP or CRL data;
  none reachable → ``revocation_unknown``.
- ``soft-fail``: revocation data is checked where the certificate declares it, and an
  unreachable responder is recorded as a soft failure instead of refusing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
from asn1crypto import pem, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.authority import AuthorityWithCert, CertTrustAnchor, TrustQualifiers
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.api import FetchLimits
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from ..clock import Clock, SystemClock
from ..errors import CertificateRefused, RevokedError
from ..settings import RevocationPolicy
from .certs import CertificateFacts, Loa, parse, subject_dn

log = logging.getLogger(__name__)

_POLICIES = {
    "require": RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
    ),
    "soft-fail": RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
        intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
    ),
}


@dataclass(frozen=True)
class CertificateCheck:
    """A successful check of one certificate at one moment (kept for R1.3's interval)."""

    facts: CertificateFacts
    checked_at: datetime
    anchor: str
    path: tuple[str, ...]
    revocation_policy: RevocationPolicy
    #: "ocsp", "crl", or "none" (soft-fail without data)
    revocation_source: str
    soft_failures: tuple[str, ...] = field(default=())
    checks: tuple[str, ...] = (
        "path",
        "validity",
        "revocation",
        "key_usage",
        "qc_statements",
    )

    @property
    def loa(self) -> Loa:
        return self.facts.loa

    def as_record(self) -> dict[str, object]:
        """The check as stored in audit records and, later, inside evidence (rule 5)."""
        return {
            "checked_at": self.checked_at.isoformat(),
            "anchor": self.anchor,
            "path": list(self.path),
            "checks": list(self.checks),
            "revocation_policy": self.revocation_policy,
            "revocation_source": self.revocation_source,
            "soft_failures": list(self.soft_failures),
            "loa": self.loa.value,
        }


def qualified_anchors(certs: Iterable[x509.Certificate]) -> list[CertTrustAnchor]:
    """The anchors, each held to its own validity period and path-length limit.

    Found in review: given as bare certificates, pyhanko-certvalidator trusts an anchor
    without limits. An issuing CA listed as an anchor (as the trusted list names them)
    then still vouched for logins after it expired, and a CA with pathLen 0 for a sub-CA
    it should never have made — certificates whose own root would refuse them."""
    return [
        CertTrustAnchor(
            cert,
            quals=TrustQualifiers(
                valid_from=cert.not_valid_before,
                valid_until=cert.not_valid_after,
                max_path_length=cert.max_path_length,
            ),
        )
        for cert in certs
    ]


def _anchor_signs_its_own_crl() -> None:
    """Let a CRL be signed by an anchor that is not self-signed (R1.1 "CRL as fallback").

    pyhanko-certvalidator 0.33 builds a CRL issuer's path with
    ``ValidationPath.truncate_to_issuer_and_append``, which looks for the issuer's *issuer*
    among the anchor and the intermediates. When the anchor is an issuing CA — as the
    trusted list names them, and as ``certs/README.md`` tells operators to configure — the
    CRL issuer is the anchor itself, its issuer is nowhere, and every CRL was refused:
    a certificate with no OCSP could never log in, and an OCSP outage refused everyone
    (found in review). The CRL issuer that *is* the anchor gets the anchor's own path."""
    original = ValidationPath.truncate_to_issuer_and_append
    if getattr(original, "vep_anchor_crl", False):
        return

    def truncate(path: ValidationPath, cert: x509.Certificate) -> ValidationPath:
        authority = path.trust_anchor.authority
        if isinstance(authority, AuthorityWithCert) and authority.certificate.dump() == cert.dump():
            return ValidationPath(path.trust_anchor, interm=[], leaf=None)
        found: ValidationPath = original(path, cert)
        return found

    truncate.vep_anchor_crl = True  # type: ignore[attr-defined]
    setattr(ValidationPath, "truncate_to_issuer_and_append", truncate)  # noqa: B010


_anchor_signs_its_own_crl()


def load_certificates(paths: Iterable[Path]) -> list[x509.Certificate]:
    """Every certificate in the PEM/DER files (or directories of them) given."""
    certs: list[x509.Certificate] = []
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            data = file.read_bytes()
            if pem.detect(data):
                certs.extend(x509.Certificate.load(der) for _, _, der in pem.unarmor(data, True))
            else:
                certs.append(x509.Certificate.load(data))
    return certs


#: A moment this close to the trust clock's now is a live check (see :meth:`check`).
LIVE_WINDOW = timedelta(minutes=1)


class CertificateChecker:
    """Validates certificates against the configured anchors; one per application."""

    def __init__(
        self,
        anchors: list[x509.Certificate],
        intermediates: list[x509.Certificate],
        policy: RevocationPolicy,
        session: aiohttp.ClientSession,
        fetch_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if not anchors:
            raise ValueError("at least one trust anchor is required")
        self._anchors = qualified_anchors(anchors)
        self._intermediates = intermediates
        self._policy: RevocationPolicy = policy
        # Issuer certificates are never fetched (AIA caIssuers): the anchors and the
        # configured intermediates are the whole PKI a login may chain to, and a URL in a
        # certificate nobody trusts yet is the presenter's to choose — found in review,
        # a self-signed certificate made the server GET any internal address (blind SSRF)
        # before it was refused. OCSP and CRL URLs are read only from certificates a
        # trusted CA issued, after the path is built.
        self._backend = AIOHttpFetcherBackend(
            session, per_request_timeout=fetch_timeout, limits=FetchLimits(max_cert_requests=0)
        )
        self._clock: Clock = clock or SystemClock()

    def now(self) -> datetime:
        """The moment of a check made now, by the trust clock.

        Revocation data is live (an OCSP responder answers about *its* now), so certificates
        and signatures are validated at the trust clock's time, which is the system clock
        except in tests that inject one. Business rules (revalidation interval, idle
        timeout) use the application's clock, which tests move freely.
        """
        return self._clock.now()

    @property
    def policy(self) -> RevocationPolicy:
        return self._policy

    async def check(self, certificate: bytes, moment: datetime | None = None) -> CertificateCheck:
        """Validate at ``moment`` (default: now by the trust clock); raise
        :class:`CertificateRefused` naming the failed check."""
        # A live check (no moment given, or the caller's "now": a signature just made)
        # takes the OCSP/CRL answers it fetches as they come, however fresh: found in
        # review, a responder whose clock ran a second or two ahead of ours (or a slow
        # fetch after ``moment`` was taken) made a fresh response "too recent" and refused
        # a valid login. A check at a past moment keeps the strict rule.
        now = self.now()
        live = moment is None or moment >= now - LIVE_WINDOW
        moment = moment or now
        cert, facts = parse(certificate)
        context = ValidationContext(
            trust_roots=self._anchors,
            other_certs=self._intermediates,
            moment=moment,
            allow_fetching=True,
            fetchers=self._backend.get_fetchers(),
            revinfo_policy=CertRevTrustPolicy(_POLICIES[self._policy], retroactive_revinfo=live),
        )
        validator = CertificateValidator(cert, validation_context=context)
        try:
            path = await validator.async_validate_path()
        except cv_errors.PathBuildingError as exc:
            raise CertificateRefused(
                "untrusted",
                "The certificate does not chain to a trusted qualified CA.",
                check=str(exc),
            ) from None
        except cv_errors.RevokedError as exc:
            raise RevokedError(
                f"The certificate was revoked on {exc.revocation_dt:%Y-%m-%d %H:%M} UTC.",
                revoked_at=exc.revocation_dt.isoformat(),
                revocation_reason=exc.reason.native,
            ) from None
        except (cv_errors.ExpiredError, cv_errors.NotYetValidError) as exc:
            raise CertificateRefused(
                "expired",
                "The certificate (or a CA above it) is outside its validity period.",
                not_before=facts.not_before.isoformat(),
                not_after=facts.not_after.isoformat(),
                check=str(exc),
            ) from None
        except cv_errors.InsufficientRevinfoError as exc:
            raise CertificateRefused(
                "revocation_unknown",
                "The revocation status of the certificate could not be established "
                "(OCSP and CRL both unavailable).",
                check=str(exc),
            ) from None
        except (cv_errors.PathValidationError, cv_errors.InvalidCertificateError) as exc:
            raise CertificateRefused(
                "untrusted", "The certificate path is not valid.", check=str(exc)
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CertificateRefused(
                "revocation_unknown",
                "The revocation service could not be reached.",
                check=type(exc).__name__,
            ) from None

        if not facts.key_usage_ok:
            raise CertificateRefused(
                "key_usage",
                "The certificate's key usage allows neither digitalSignature nor nonRepudiation.",
                key_usage=sorted(facts.key_usage),
            )
        if facts.loa is Loa.LOW:
            raise CertificateRefused(
                "not_qualified",
                "The certificate is not a qualified certificate for electronic signatures "
                "(QCStatement QcCompliance with QcType esign is required).",
                qc_compliance=facts.qc.compliance,
                qc_types=list(facts.qc.types),
                loa=Loa.LOW.value,
            )
        return CertificateCheck(
            facts=facts,
            checked_at=moment,
            anchor=_anchor_name(path),
            path=tuple(subject_dn(c) for c in path.iter_certs(include_root=False)),
            revocation_policy=self._policy,
            revocation_source=_revocation_source(context, cert),
            soft_failures=tuple(str(e) for e in context.soft_fail_exceptions),
        )


def _anchor_name(path: ValidationPath) -> str:
    authority = path.trust_anchor.authority
    if isinstance(authority, AuthorityWithCert):
        return subject_dn(authority.certificate)
    return str(path.trust_anchor.authority.name.human_friendly)


def _revocation_source(context: ValidationContext, cert: x509.Certificate) -> str:
    """Which revocation data vouched for the leaf: an OCSP response about it, else a CRL."""
    for response in context.ocsps:
        basic = response["response_bytes"]["response"].parsed
        for single in basic["tbs_response_data"]["responses"]:
            if single["cert_id"]["serial_number"].native == cert.serial_number:
                return "ocsp"
    for crl in context.crls:
        if crl.issuer == cert.issuer:
            return "crl"
    return "none"


__all__ = ["CertificateCheck", "CertificateChecker", "load_certificates", "qualified_anchors"]
