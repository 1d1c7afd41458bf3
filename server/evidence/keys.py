"""Loading and checking seal material shared by the file and PKCS#11 signers (R6.5)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from .errors import SignerError

SealKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
#: ECDSA with SHA-256 for every EC signature made here (seals, local TSA tokens): the
#: object is immutable, and building one per signature showed in the delivery profile.
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def load_chain(path: Path) -> tuple[x509.Certificate, ...]:
    try:
        certs = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise SignerError(f"cannot read the seal certificate chain {path}: {exc}") from None
    if not certs:
        raise SignerError(f"no certificate in {path}")
    return certs


def chain_pem(certs: Sequence[x509.Certificate]) -> list[str]:
    return [c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs]


def check_pair(key: SealKey, certificate: x509.Certificate, where: str) -> None:
    """Sign once and verify with the certificate: the key must belong to the seal cert."""
    probe = b"vep seal key self-test"
    public = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
            public, ec.EllipticCurvePublicKey
        ):
            public.verify(
                key.sign(probe, ec.ECDSA(hashes.SHA256())), probe, ec.ECDSA(hashes.SHA256())
            )
            return
        if isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
            public.verify(
                key.sign(probe, PKCS1v15(), hashes.SHA256()), probe, PKCS1v15(), hashes.SHA256()
            )
            return
    except InvalidSignature:
        pass
    raise SignerError(f"the seal key in {where} does not match the seal certificate")
