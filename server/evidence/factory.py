"""Build the application's :class:`EvidenceSealer` from :class:`Settings` (R6.2, R6.5, R6.6).

Called once at start-up. The seal key is loaded (and self-tested against its certificate)
here, so a wrong key, PIN or token stops the start instead of the first delivery; in
qualified mode the static checks (seal certificate, HSM) run here too, while the TSA's
standing is checked on every token it returns.
"""

from __future__ import annotations

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from ..settings import Settings
from .local_tsa import local_tsa_for
from .model import CertRef, IssuerDetails
from .seal import EvidenceSealer
from .signer import Signer, load_signer
from .timestamper import HttpTimeStamper, TimeStamper, tsa_url_for

#: The evidence policy this format implements (EvidenceIssuerPolicyID).
DEFAULT_POLICY_ID = "https://vep.si/policy/evidence/v1"


def provider_name(certificate: x509.Certificate) -> str:
    """The provider as its seal certificate names it: organizationName, else commonName."""
    for oid in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME):
        values = certificate.subject.get_attributes_for_oid(oid)
        if values:
            return str(values[0].value)
    return certificate.subject.rfc4514_string()


def issuer_for(signer: Signer, policy_id: str = DEFAULT_POLICY_ID) -> IssuerDetails:
    seal = signer.certificates[0]
    return IssuerDetails(provider_name(seal), policy_id, CertRef.of(seal))


def timestamper_from_settings(settings: Settings, session: aiohttp.ClientSession) -> TimeStamper:
    """The evidence TSA: ``VEP_TSA_URL`` over HTTP, the dev PKI's, or ``local`` in-process."""
    if settings.tsa_url == "local":
        return local_tsa_for(settings.pki_dir)
    return HttpTimeStamper(tsa_url_for(settings), session, timeout=settings.fetch_timeout_seconds)


def sealer_from_settings(
    settings: Settings,
    session: aiohttp.ClientSession,
    policy_id: str = DEFAULT_POLICY_ID,
    signer: Signer | None = None,
    timestamper: TimeStamper | None = None,
) -> EvidenceSealer:
    """The sealer the settings describe (``signer`` and ``timestamper`` to share ones
    already made — a PKCS#11 signer holds a logged-in session, the local TSA loads and
    self-tests its key); raises NotQualified at once in a qualified configuration whose
    seal cannot be qualified (fail closed, R6.6)."""
    signer = signer or load_signer(settings)
    timestamper = timestamper or timestamper_from_settings(settings, session)
    sealer = EvidenceSealer(
        signer,
        timestamper,
        issuer_for(signer, policy_id),
        settings.qualified,
        validate_schema=settings.evidence_schema_check,
    )
    sealer.check_qualified()
    return sealer


__all__ = [
    "DEFAULT_POLICY_ID",
    "issuer_for",
    "provider_name",
    "sealer_from_settings",
    "timestamper_from_settings",
]
