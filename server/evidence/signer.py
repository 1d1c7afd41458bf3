"""The provider's seal key: a key file in development, a PKCS#11 token in production (R6.5).

:class:`Signer` is what the sealer needs: the certificate chain and a ``cryptography``
private key object the XAdES signer can sign with. :class:`FileKeySigner` holds a PEM key file;
:class:`~server.evidence.hsm.Pkcs11Signer` keeps the key in a token. Key objects and
certificates are loaded once per signer, since parsing a PEM key per signature is about
100 times slower than the signature itself (shared NOTES), and each signer signs once at
construction to prove that its key belongs to its certificate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..settings import Settings
from .errors import SignerError
from .hsm import Pkcs11Signer, TokenEcKey
from .keys import SealKey, chain_pem, check_pair, load_chain


@runtime_checkable
class Signer(Protocol):
    """What :class:`~server.evidence.seal.EvidenceSealer` needs from a seal key."""

    @property
    def cert_chain_pem(self) -> list[str]:
        """The seal certificate first, then its CA certificates, PEM."""
        ...

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The same chain, parsed once."""
        ...

    @property
    def private_key(self) -> SealKey:
        """A ``cryptography`` key object the XAdES signer signs with (R6.5)."""
        ...

    @property
    def hardware_backed(self) -> bool:
        """True when the key lives in a PKCS#11 token, not in a file (R6.5, R6.6)."""
        ...

    @property
    def token_description(self) -> str:
        """Where the key lives, for refusals and operators (never a secret)."""
        ...


class FileKeySigner:
    """A seal key in a PEM file (development, R6.5); never qualified (R6.6)."""

    hardware_backed = False

    def __init__(self, cert_chain_pem: Path, key_pem: Path) -> None:
        self._certs = load_chain(cert_chain_pem)
        try:
            key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SignerError(f"cannot read the seal key {key_pem}: {type(exc).__name__}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise SignerError(f"the seal key {key_pem} is neither EC nor RSA")
        self._key: SealKey = key
        self._where = f"key file {key_pem}"
        check_pair(key, self._certs[0], self._where)

    @property
    def cert_chain_pem(self) -> list[str]:
        return chain_pem(self._certs)

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return self._certs

    @property
    def private_key(self) -> SealKey:
        return self._key

    @property
    def token_description(self) -> str:
        return self._where

    def __repr__(self) -> str:
        return f"FileKeySigner({self._where})"


def load_signer(settings: Settings) -> FileKeySigner | Pkcs11Signer:
    """The seal key the settings name: PKCS#11 when ``pkcs11_library`` is set (R6.5)."""
    if settings.pkcs11_library is not None:
        if settings.pkcs11_pin is None:
            raise SignerError("VEP_PKCS11_PIN is required with VEP_PKCS11_LIBRARY")
        return Pkcs11Signer(
            settings.pkcs11_library,
            settings.pkcs11_token,
            settings.pkcs11_key_label,
            settings.pkcs11_pin,
            settings.effective_seal_cert,
        )
    return FileKeySigner(settings.effective_seal_cert, settings.effective_seal_key)


__all__ = [
    "FileKeySigner",
    "Pkcs11Signer",
    "SealKey",
    "Signer",
    "SignerError",
    "TokenEcKey",
    "load_signer",
]
