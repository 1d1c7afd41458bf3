"""Evidence of every delivery step (R6.1, R6.2, R6.5, R6.6).

An :class:`~server.evidence.model.EvidenceEvent` becomes an ETSI EN 319 522-3-shaped XML
document (:mod:`.xml`, written as canonical text: :mod:`.c14n`), sealed by the provider
as XAdES-B-T (:mod:`.seal`: :mod:`.xades_b` + an RFC 3161 time-stamp from
:mod:`.timestamper`) with a key from a file or a PKCS#11 token (:mod:`.signer`), and
verifiable by anyone with :mod:`.verify`, xmlsec1 and openssl ts.
"""

from .errors import EvidenceError, NotQualified, SignerError, TimestampError
from .factory import DEFAULT_POLICY_ID, issuer_for, sealer_from_settings
from .model import CertRef, ContentPart, EventName, EvidenceEvent, IssuerDetails, Party
from .seal import EvidenceSealer, SealedEvidence
from .signer import FileKeySigner, Pkcs11Signer, Signer, load_signer
from .timestamper import HttpTimeStamper, TimeStamper, tsa_url_for
from .verify import EvidenceVerification, verify_evidence

__all__ = [
    "DEFAULT_POLICY_ID",
    "CertRef",
    "ContentPart",
    "EventName",
    "EvidenceError",
    "EvidenceEvent",
    "EvidenceSealer",
    "EvidenceVerification",
    "FileKeySigner",
    "HttpTimeStamper",
    "IssuerDetails",
    "NotQualified",
    "Party",
    "Pkcs11Signer",
    "SealedEvidence",
    "Signer",
    "SignerError",
    "TimeStamper",
    "TimestampError",
    "issuer_for",
    "load_signer",
    "sealer_from_settings",
    "tsa_url_for",
    "verify_evidence",
]
