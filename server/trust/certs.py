"""Certificate facts that do not need a network: QCStatements, key usage, identity, LoA.

- QCStatements per ETSI EN 319 412-5 (QcCompliance, QcSSCD, QcType).
- Level of assurance per R1.2: qualified for e-signatures on a QSCD → ``high``; qualified
  without QcSSCD → ``substantial``; anything else → ``low`` (refused).
- Identity per R1.4: the certificate is issuer + serial; the *person* is a stable id derived
  from the subject serialNumber (ETSI EN 319 412-1 §5.1.3 semantics identifier such as
  ``PNOSI-…``, or an issuer-scoped serial), so a renewed certificate maps to the same person.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

# Importing the module registers the qcStatements extension with asn1crypto.
import pyhanko.sign.ades.qualified_asn1  # noqa: F401
from asn1crypto import pem, x509
from cryptography import x509 as pyca_x509

from ..errors import CertificateRefused


class Loa(enum.StrEnum):
    HIGH = "high"
    SUBSTANTIAL = "substantial"
    LOW = "low"


QCT_ESIGN = "qct_esign"
#: ETSI EN 319 412-1 §5.1.3: a natural person semantics identifier is globally meaningful.
_SEMANTICS_ID = re.compile(r"^(PAS|IDC|PNO|TAX|TIN)[A-Z]{2}-.+$")
_ACCEPTED_KEY_USAGES = frozenset({"digital_signature", "non_repudiation"})


@dataclass(frozen=True)
class QcInfo:
    """What the certificate's qcStatements declare (EN 319 412-5)."""

    compliance: bool
    sscd: bool
    types: tuple[str, ...]

    @property
    def for_esignature(self) -> bool:
        """R1.1: QcType esign, or no QcType at all (which EN 319 412-5 reads as esign)."""
        return self.compliance and (not self.types or QCT_ESIGN in self.types)


@dataclass(frozen=True)
class CertificateFacts:
    """The facts of one certificate that authentication and evidence refer to."""

    der: bytes
    fingerprint: str  # SHA-256 of the DER, hex
    subject: str
    issuer: str
    serial: str  # hex, as issuers print it
    not_before: datetime
    not_after: datetime
    given_name: str | None
    surname: str | None
    common_name: str | None
    subject_serial_number: str | None
    person_id: str
    key_usage: frozenset[str]
    qc: QcInfo

    @property
    def loa(self) -> Loa:
        if not self.qc.for_esignature:
            return Loa.LOW
        return Loa.HIGH if self.qc.sscd else Loa.SUBSTANTIAL

    @property
    def key_usage_ok(self) -> bool:
        return bool(self.key_usage & _ACCEPTED_KEY_USAGES)


def load_der(data: bytes) -> bytes:
    """DER from DER or PEM input; raises :class:`CertificateRefused` (malformed)."""
    if pem.detect(data):
        try:
            _, _, data = pem.unarmor(data)
        except ValueError as exc:
            raise CertificateRefused("malformed", f"Not a PEM certificate: {exc}") from None
    return data


def parse(data: bytes) -> tuple[x509.Certificate, CertificateFacts]:
    der = load_der(data)
    try:
        cert = x509.Certificate.load(der)
        facts = _facts(cert, der)
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateRefused("malformed", f"The certificate cannot be parsed: {exc}") from None
    return cert, facts


def _attr(name: x509.Name, key: str) -> str | None:
    value = name.native.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


def qc_info(cert: x509.Certificate) -> QcInfo:
    compliance = sscd = False
    types: list[str] = []
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].native != "qc_statements":
            continue
        for statement in ext["extn_value"].parsed:
            sid = statement["statement_id"].native
            if sid == "qc_compliance":
                compliance = True
            elif sid == "qc_sscd":
                sscd = True
            elif sid == "qc_type":
                types.extend(str(t) for t in statement["statement_info"].native)
    return QcInfo(compliance=compliance, sscd=sscd, types=tuple(types))


def person_id(cert: x509.Certificate) -> str:
    """A stable, opaque person identifier (R1.4); no personal data appears in it.

    A semantics identifier (``PNOSI-…``, ``TAXSI-…``) is global; another serialNumber is
    only unique within its issuer, so it is scoped by the issuer name; without any
    serialNumber the person is the issuer + subject name.
    """
    subject_sn = _attr(cert.subject, "serial_number")
    if subject_sn and _SEMANTICS_ID.match(subject_sn):
        scope = f"etsi:{subject_sn}"
    elif subject_sn:
        scope = f"issuer-sn:{cert.issuer.sha256.hex()}:{subject_sn}"
    else:
        scope = f"issuer-dn:{cert.issuer.sha256.hex()}:{cert.subject.sha256.hex()}"
    return "p-" + hashlib.sha256(scope.encode("utf-8")).hexdigest()[:32]


_NAME_LABELS = {
    pyca_x509.NameOID.GIVEN_NAME: "GN",
    pyca_x509.NameOID.SURNAME: "SN",
    pyca_x509.NameOID.SERIAL_NUMBER: "serialNumber",
    pyca_x509.NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
}


def same_content(der: bytes, other: bytes) -> bool:
    """Whether two certificates carry the same signed content (TBSCertificate), byte for
    byte — differing, if at all, only in the encoding of the CA's signature. An ECDSA
    signature (r, s) has a twin (r, n − s) that verifies as well, so anyone can make a
    second DER of a public certificate; it is the same certificate, not a second one under
    its serial number (RFC 5280 §4.1.2.2)."""
    return bytes(x509.Certificate.load(der)["tbs_certificate"].dump()) == bytes(
        x509.Certificate.load(other)["tbs_certificate"].dump()
    )


def subject_dn(cert: x509.Certificate) -> str:
    """RFC 4514 string of the subject, with the names EN 319 412 certificates use."""
    return pyca_x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string(_NAME_LABELS)


def _facts(cert: x509.Certificate, der: bytes) -> CertificateFacts:
    tbs = cert["tbs_certificate"]
    validity = tbs["validity"]
    key_usage = cert.key_usage_value
    names = pyca_x509.load_der_x509_certificate(der)
    return CertificateFacts(
        der=der,
        fingerprint=hashlib.sha256(der).hexdigest(),
        subject=names.subject.rfc4514_string(_NAME_LABELS),
        issuer=names.issuer.rfc4514_string(_NAME_LABELS),
        serial=format(cert.serial_number, "x"),
        not_before=validity["not_before"].native,
        not_after=validity["not_after"].native,
        given_name=_attr(cert.subject, "given_name"),
        surname=_attr(cert.subject, "surname"),
        common_name=_attr(cert.subject, "common_name"),
        subject_serial_number=_attr(cert.subject, "serial_number"),
        person_id=person_id(cert),
        key_usage=frozenset(key_usage.native) if key_usage is not None else frozenset(),
        qc=qc_info(cert),
    )
