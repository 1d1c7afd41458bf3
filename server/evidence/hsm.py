"""The seal key in a PKCS#11 token: HSM in production, SoftHSM2 in tests (R6.5).

The evidence signer (:class:`~server.evidence.xades_b.XadesBSigner`, and signxml, which
signs the same way) uses a ``cryptography`` private key: it calls
``key.sign(signed_info_c14n, ECDSA(SHA256()))`` and reads ``key.key_size`` to turn the DER
(r, s) into XML-DSig's fixed-width r‖s; a KeyValue would also read ``key.curve`` and
``key.public_key()`` (we omit KeyValue). :class:`TokenEcKey` implements that interface over
a token: SoftHSM2 offers only the raw ``CKM_ECDSA`` mechanism, so the digest is computed
here and the token signs the digest (PKCS#11 v2.40 §2.3.6); its r‖s output is DER-encoded
for the caller.

The PIN is kept only to log in again after a token session is lost; it never appears in a
repr, an exception or a log.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pkcs11
from cryptography import utils as crypto_utils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from .errors import SignerError
from .keys import SealKey, chain_pem, check_pair, load_chain


class TokenEcKey(ec.EllipticCurvePrivateKey):
    """A ``cryptography`` EC private key whose ``sign`` runs in a PKCS#11 token.

    Only what signing needs is implemented; the private value never leaves the token, so
    ``private_numbers``/``private_bytes``/``exchange`` refuse.
    """

    def __init__(self, signer: Pkcs11Signer, public: ec.EllipticCurvePublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(
        self, data: crypto_utils.Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("only ECDSA is supported by the token key")
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            digest = bytes(data)
        else:
            hasher = hashes.Hash(algorithm)
            hasher.update(data)
            digest = hasher.finalize()
        raw = self._signer.sign_digest(digest)
        half = len(raw) // 2
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise TypeError("the token key is for signing only")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise TypeError("the token key cannot be exported")

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise TypeError("the token key cannot be exported")

    def __copy__(self) -> TokenEcKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> TokenEcKey:
        return self


class Pkcs11Signer:
    """A seal key in a PKCS#11 token (HSM in production, SoftHSM2 in tests), EC only.

    One logged-in session is kept open; PKCS#11 sessions must not be used by two threads
    at once (PKCS#11 v2.40 §5.6), so signatures are serialised by a lock. A lost session is
    reopened once before the error is reported.
    """

    hardware_backed = True

    def __init__(
        self, library: Path, token_label: str, key_label: str, pin: str, cert_chain_pem: Path
    ) -> None:
        self._certs = load_chain(cert_chain_pem)
        public = self._certs[0].public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise SignerError("the PKCS#11 seal supports EC keys only")
        self._library = library
        self._token_label = token_label
        self._key_label = key_label
        self._pin = pin
        self._lock = threading.Lock()
        self._session: pkcs11.Session | None = None
        self._key_object: Any = None
        self.manufacturer = ""
        self._open()
        self._key = TokenEcKey(self, public)
        check_pair(self._key, self._certs[0], self.token_description)

    def _open(self) -> None:
        if self._session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):  # already gone: why we reopen
                self._session.close()
            self._session = None
        try:
            # python-pkcs11 loads and initialises a library once per process.
            token = pkcs11.lib(str(self._library)).get_token(token_label=self._token_label)
            self.manufacturer = token.manufacturer_id.strip()
            session = token.open(user_pin=self._pin)
            self._key_object = session.get_key(
                object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self._key_label
            )
        except pkcs11.PKCS11Error as exc:
            raise SignerError(
                f"cannot use the PKCS#11 key {self._key_label!r} in token "
                f"{self._token_label!r}: {type(exc).__name__}"
            ) from None
        self._session = session

    def sign_digest(self, digest: bytes) -> bytes:
        """Raw ECDSA (``CKM_ECDSA``) over a digest computed by the caller; r‖s."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    result: bytes = self._key_object.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)
                    return result
                except pkcs11.PKCS11Error as exc:
                    if attempt == 2:
                        raise SignerError(
                            f"the PKCS#11 token refused to sign: {type(exc).__name__}"
                        ) from None
                    self._open()
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

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
    def software_token(self) -> bool:
        """SoftHSM is a software emulation, not a hardware security module (R6.6)."""
        return "softhsm" in self.manufacturer.lower()

    @property
    def token_description(self) -> str:
        return (
            f"PKCS#11 token {self._token_label!r} ({self.manufacturer or 'unknown maker'}) "
            f"key {self._key_label!r}"
        )

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.token_description})"


__all__ = ["Pkcs11Signer", "TokenEcKey"]
