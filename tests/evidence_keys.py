"""Seal keys, certificates and a time-stamping authority made in a test, for sealing without
the dev PKI: a self-signed seal certificate (optionally with the QcStatements of a qualified
e-seal, EN 319 412-5), a :class:`~server.evidence.signer.Signer` over a software key that
can claim to be hardware (to exercise the qualified path and its thread), and a
:class:`~server.evidence.local_tsa.LocalTimeStamper` whose tokens can claim to be qualified.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyhanko.sign.ades.qualified_asn1 as qualified_asn1
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from server.evidence.keys import SealKey, chain_pem
from server.evidence.local_tsa import LocalTimeStamper
from server.evidence.timestamper import Stamp

QC_STATEMENTS = ObjectIdentifier("1.3.6.1.5.5.7.1.3")


def qc_eseal_statements() -> bytes:
    """QcStatements: QcCompliance and QcType eseal (EN 319 412-5 §4.2.1, §4.2.3)."""
    return bytes(
        qualified_asn1.QcStatements(
            [
                {"statement_id": "qc_compliance"},
                {"statement_id": "qc_type", "statement_info": ["qct_eseal"]},
            ]
        ).dump()
    )


def self_signed(
    key: SealKey, name: str = "XAdES template test", *, qualified: bool = False, tsa: bool = False
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        # A time-stamping certificate is an end entity (RFC 3161 §2.3); the seal
        # certificate is its own anchor for xmlsec1 and signxml, hence a CA.
        .add_extension(x509.BasicConstraints(ca=not tsa, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, tsa, False, False, False, not tsa, not tsa, False, False),
            critical=True,
        )
    )
    if qualified:
        statements = x509.UnrecognizedExtension(QC_STATEMENTS, qc_eseal_statements())
        builder = builder.add_extension(statements, critical=False)
    if tsa:
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
        builder = builder.add_extension(eku, critical=True)
    return builder.sign(key, hashes.SHA256())


@dataclass(frozen=True)
class TestSigner:
    """A :class:`~server.evidence.signer.Signer` over a key object; ``hardware_backed`` is
    whatever the test says (True sends the key operation to a thread, as for an HSM)."""

    __test__ = False  # not a test class for pytest

    key: SealKey
    chain: tuple[x509.Certificate, ...]
    hardware_backed: bool = False

    @property
    def cert_chain_pem(self) -> list[str]:
        return chain_pem(self.chain)

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return self.chain

    @property
    def private_key(self) -> SealKey:
        return self.key

    @property
    def token_description(self) -> str:
        return "a test key"


class TestTimeStamper(LocalTimeStamper):
    """The local TSA over a fresh self-signed EC key; counts its tokens; ``qualified`` makes
    its stamps say they are qualified (the sealer's R6.6 check reads that flag)."""

    __test__ = False

    def __init__(self, directory: Path, *, qualified: bool = False) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = self_signed(key, "Test TSA", tsa=True)
        cert_path, key_path = directory / "tsa.pem", directory / "tsa.key.pem"
        cert_path.write_bytes(self.certificate.public_bytes(Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        super().__init__(cert_path, key_path)
        self.claims_qualified = qualified
        self.stamps = 0

    async def stamp(self, digest: bytes, hash_name: str = "sha256") -> Stamp:
        self.stamps += 1
        stamp = await super().stamp(digest, hash_name)
        return dataclasses.replace(stamp, qualified=stamp.qualified or self.claims_qualified)
