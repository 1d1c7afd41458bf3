"""Signature values and digests: CMS (RFC 5652 §5.6) and XMLDSig (XMLDSig 1.1 §6).

CMS signature values are checked by pyhanko-certvalidator's signature validator, extended
with BSI TR-03111 "plain" ECDSA (r‖s instead of DER), which real German QES use
(TeleSec PKS eIDAS QES CA 1). XMLDSig methods are mapped to the same primitives; an XML
ECDSA/DSA value is r‖s as well (XMLDSig 1.1 §6.4.3).
"""

from __future__ import annotations

from typing import Any

from asn1crypto import algos, cms, core, keys, x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils
from pyhanko_certvalidator.errors import (
    AlgorithmNotSupported,
    DSAParametersUnavailable,
    PSSParameterMismatch,
)
from pyhanko_certvalidator.sig_validate import (
    DefaultSignatureValidator,
    SignatureValidationContext,
)
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

#: BSI TR-03111 ecdsa-plain-SHA*: OID → digest
_PLAIN_ECDSA = {
    "0.4.0.127.0.7.1.1.4.1.1": "sha1",
    "0.4.0.127.0.7.1.1.4.1.2": "sha224",
    "0.4.0.127.0.7.1.1.4.1.3": "sha256",
    "0.4.0.127.0.7.1.1.4.1.4": "sha384",
    "0.4.0.127.0.7.1.1.4.1.5": "sha512",
}
WEAK_DIGESTS = frozenset({"md5", "sha1", "ripemd160"})

_XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_MORE07 = "http://www.w3.org/2007/05/xmldsig-more#"
_ENC = "http://www.w3.org/2001/04/xmlenc#"
#: XMLDSig SignatureMethod → (key type, digest)
XML_SIGNATURE_METHODS: dict[str, tuple[str, str]] = {
    _XMLDSIG + "rsa-sha1": ("rsa", "sha1"),
    _MORE + "rsa-sha224": ("rsa", "sha224"),
    _MORE + "rsa-sha256": ("rsa", "sha256"),
    _MORE + "rsa-sha384": ("rsa", "sha384"),
    _MORE + "rsa-sha512": ("rsa", "sha512"),
    _MORE + "ecdsa-sha1": ("ecdsa", "sha1"),
    _MORE + "ecdsa-sha224": ("ecdsa", "sha224"),
    _MORE + "ecdsa-sha256": ("ecdsa", "sha256"),
    _MORE + "ecdsa-sha384": ("ecdsa", "sha384"),
    _MORE + "ecdsa-sha512": ("ecdsa", "sha512"),
    _MORE07 + "sha256-rsa-MGF1": ("rsa-pss", "sha256"),
    _MORE07 + "sha384-rsa-MGF1": ("rsa-pss", "sha384"),
    _MORE07 + "sha512-rsa-MGF1": ("rsa-pss", "sha512"),
    _XMLDSIG + "dsa-sha1": ("dsa", "sha1"),
    "http://www.w3.org/2009/xmldsig11#dsa-sha256": ("dsa", "sha256"),
}
#: XMLDSig DigestMethod → digest
XML_DIGEST_METHODS: dict[str, str] = {
    _XMLDSIG + "sha1": "sha1",
    _MORE + "sha224": "sha224",
    _ENC + "sha256": "sha256",
    _MORE + "sha384": "sha384",
    _ENC + "sha512": "sha512",
    _MORE07 + "sha3-256": "sha3_256",
    _MORE07 + "sha3-384": "sha3_384",
    _MORE07 + "sha3-512": "sha3_512",
}


class SignatureCheckError(Exception):
    """The value does not verify (``code`` signature_invalid) or cannot be checked
    (``code`` unsupported_algorithm)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def digest(algorithm: str, data: bytes) -> bytes:
    """``data`` hashed with the asn1crypto-named ``algorithm`` (``ValueError`` if unknown)."""
    try:
        hasher = hashes.Hash(get_pyca_cryptography_hash(algorithm))
    except (NotImplementedError, KeyError, ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"unsupported digest algorithm {algorithm}") from exc
    hasher.update(data)
    return hasher.finalize()


def _der_from_plain(signature: bytes) -> bytes:
    half = len(signature) // 2
    if not half or len(signature) % 2:
        raise InvalidSignature("a plain (r, s) signature has an even length")
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:], "big")
    return bytes(utils.encode_dss_signature(r, s))


class _Validator(DefaultSignatureValidator):
    """pyHanko's validator, plus plain ECDSA."""

    def validate_signature(
        self,
        signature: bytes,
        signed_data: bytes,
        public_key_info: keys.PublicKeyInfo,
        signature_algorithm: algos.SignedDigestAlgorithm,
        context: SignatureValidationContext = SignatureValidationContext(),  # noqa: B008
    ) -> None:
        plain = _PLAIN_ECDSA.get(signature_algorithm["algorithm"].dotted)
        if plain is None:
            super().validate_signature(
                signature, signed_data, public_key_info, signature_algorithm, context
            )
            return
        key = serialization.load_der_public_key(public_key_info.dump())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidSignature("plain ECDSA needs an EC key")
        md = get_pyca_cryptography_hash(plain)
        key.verify(_der_from_plain(signature), signed_data, ec.ECDSA(md))


_VALIDATOR = _Validator()


def verify_cms(signer_info: cms.SignerInfo, cert: x509.Certificate, signed: bytes) -> None:
    """Check a SignerInfo's signature value over ``signed`` (the DER of the signed attributes,
    or the digest itself when there are none: ``prehashed``)."""
    attrs = signer_info["signed_attrs"]
    prehashed = isinstance(attrs, core.Void) or len(attrs) == 0
    context = SignatureValidationContext(
        contextual_md_algorithm=signer_info["digest_algorithm"]["algorithm"].native,
        prehashed=prehashed,
    )
    _run(
        lambda: _VALIDATOR.validate_signature(
            signer_info["signature"].native,
            signed,
            cert.public_key,
            signer_info["signature_algorithm"],
            context,
        )
    )


def cms_algorithm_name(signer_info: cms.SignerInfo) -> str:
    algorithm = signer_info["signature_algorithm"]["algorithm"]
    name = algorithm.native
    if algorithm.dotted in _PLAIN_ECDSA:
        name = f"plain-ecdsa-{_PLAIN_ECDSA[algorithm.dotted]}"
    return f"{name} / {signer_info['digest_algorithm']['algorithm'].native}"


def verify_xml(method: str, cert: x509.Certificate, signed: bytes, signature: bytes) -> None:
    """Check an XMLDSig SignatureValue (raises :class:`SignatureCheckError`)."""
    if method not in XML_SIGNATURE_METHODS:
        raise SignatureCheckError("unsupported_algorithm", f"Unsupported SignatureMethod {method}.")
    kind, md_name = XML_SIGNATURE_METHODS[method]
    md = get_pyca_cryptography_hash(md_name)

    def check() -> None:
        key: Any = serialization.load_der_public_key(cert.public_key.dump())
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), md)
        elif kind == "rsa-pss" and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(md), salt_length=md.digest_size)
            key.verify(signature, signed, pss, md)
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(_der_from_plain(signature), signed, ec.ECDSA(md))
        elif kind == "dsa" and isinstance(key, dsa.DSAPublicKey):
            key.verify(_der_from_plain(signature), signed, md)
        else:
            raise InvalidSignature(f"the certificate's key is not a {kind} key")

    _run(check)


def _run(check: Any) -> None:
    try:
        check()
    except (
        AlgorithmNotSupported,  # these three are InvalidSignature subclasses: first
        DSAParametersUnavailable,
        PSSParameterMismatch,
        UnsupportedAlgorithm,
        NotImplementedError,
    ) as exc:
        raise SignatureCheckError(
            "unsupported_algorithm", f"The signature algorithm is not supported ({exc})."
        ) from None
    except InvalidSignature as exc:
        raise SignatureCheckError(
            "signature_invalid",
            "The signature value does not verify with the signer certificate's key"
            + (f" ({exc})." if str(exc) else "."),
        ) from None
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        # pyHanko asserts the key type; a mismatch between key and algorithm lands here
        raise SignatureCheckError(
            "signature_invalid", f"The signature cannot be verified with that key ({exc})."
        ) from None


__all__ = [
    "WEAK_DIGESTS",
    "XML_DIGEST_METHODS",
    "XML_SIGNATURE_METHODS",
    "SignatureCheckError",
    "cms_algorithm_name",
    "digest",
    "verify_cms",
    "verify_xml",
]
