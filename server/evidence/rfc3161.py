"""RFC 3161 time-stamp tokens: parse, check the TSA's signature, its chain, its standing.

Used both when a token arrives (RFC 3161 §2.4.2: the requester verifies the token before
relying on it) and when evidence is verified later, so that both apply the same rules:
- the token is CMS SignedData with eContentType id-ct-TSTInfo (RFC 3161 §2.4.2);
- the signed attributes carry the digest of the TSTInfo and an ESS SigningCertificate
  (v1, RFC 2634, or v2, RFC 5816) naming the signer certificate;
- the signer certificate has the critical extended key usage id-kp-timeStamping only
  (RFC 3161 §2.3) and chains to a caller-given anchor at the token's genTime.

Qualified standing (R6.6): ETSI EN 319 422 §9.1 marks a qualified time-stamp with the
``esi4-qtstStatement-1`` extension in TSTInfo; we also accept a TSA certificate that
declares QcCompliance (EN 319 412-5). A token with neither is not qualified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Importing the module registers the qcStatements extension with asn1crypto.
import pyhanko.sign.ades.qualified_asn1  # noqa: F401
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..trust.certs import qc_info
from .errors import TimestampError

#: ETSI EN 319 422 §9.1 esi4-qtstStatement-1: "this is a qualified electronic time-stamp".
QTST_STATEMENT_OID = "0.4.0.19422.1.1"
_DER = Encoding.DER
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class TokenInfo:
    """The facts of one RFC 3161 token, as parsed (not yet verified)."""

    der: bytes
    gen_time: datetime
    hash_name: str
    imprint: bytes
    nonce: int | None
    serial: int
    policy: str
    qtst_statement: bool
    signer: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    _signed_data: cms.SignedData

    @property
    def qualified(self) -> bool:
        """R6.6: EN 319 422 qualified statement, or a QcCompliance TSA certificate."""
        if self.qtst_statement:
            return True
        cert = asn1_x509.Certificate.load(self.signer.public_bytes(_DER))
        return qc_info(cert).compliance


def digest(data: bytes, hash_name: str = "sha256") -> bytes:
    if hash_name not in _HASHES:
        raise TimestampError(f"unsupported hash {hash_name!r}")
    return hashlib.new(hash_name, data).digest()


def parse(der: bytes) -> TokenInfo:
    """Parse a DER TimeStampToken (ContentInfo of SignedData); TimestampError if malformed."""
    try:
        content_info = cms.ContentInfo.load(der)
        if content_info["content_type"].native != "signed_data":
            raise TimestampError("the token is not CMS SignedData")
        signed_data = content_info["content"]
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampError("the token does not encapsulate a TSTInfo")
        tst = tsp.TSTInfo.load(encap["content"].contents)
        imprint = tst["message_imprint"]
        certs = tuple(
            x509.load_der_x509_certificate(choice.chosen.dump())
            for choice in signed_data["certificates"] or ()
            if choice.name == "certificate"
        )
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise TimestampError("the token must have exactly one signer")
        extensions = tst["extensions"]
        qtst = any(
            ext["extn_id"].dotted == QTST_STATEMENT_OID
            for ext in (extensions if extensions.native is not None else ())
        )
        return TokenInfo(
            der=der,
            gen_time=tst["gen_time"].native,
            hash_name=imprint["hash_algorithm"]["algorithm"].native,
            imprint=imprint["hashed_message"].native,
            nonce=tst["nonce"].native,
            serial=tst["serial_number"].native,
            policy=tst["policy"].dotted,
            qtst_statement=qtst,
            signer=_signer_certificate(signer_infos[0], certs),
            certificates=certs,
            _signed_data=signed_data,
        )
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"malformed time-stamp token: {exc}") from None


def _signer_certificate(
    signer_info: cms.SignerInfo, certs: tuple[x509.Certificate, ...]
) -> x509.Certificate:
    sid = signer_info["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if cert.serial_number != wanted["serial_number"].native:
                continue
            # Same DER is the usual case; else compare names as RFC 5280 §7.1 says (slower).
            issuer = wanted["issuer"]
            if cert.issuer.public_bytes() == issuer.dump():
                return cert
            if asn1_x509.Certificate.load(cert.public_bytes(_DER)).issuer == issuer:
                return cert
        elif sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.chosen.native:
                return cert
    raise TimestampError("the token does not contain its signer's certificate (certReq)")


def verify_signature(info: TokenInfo) -> None:
    """The TSA's CMS signature over the TSTInfo, and the ESS signing-certificate binding."""
    signer_info = info._signed_data["signer_infos"][0]
    hash_name = signer_info["digest_algorithm"]["algorithm"].native
    if hash_name not in _HASHES:
        raise TimestampError(f"unsupported token digest {hash_name!r}")
    attrs = signer_info["signed_attrs"]
    if not attrs:
        raise TimestampError("the token has no signed attributes")
    values: dict[str, Any] = {attr["type"].native: attr["values"][0] for attr in attrs}
    content = info._signed_data["encap_content_info"]["content"].contents
    if values.get("content_type") is None or values["content_type"].native != "tst_info":
        raise TimestampError("the token's content-type attribute is not id-ct-TSTInfo")
    if values.get("message_digest") is None or values["message_digest"].native != digest(
        content, hash_name
    ):
        raise TimestampError("the token's message digest does not match its TSTInfo")
    _check_ess(values, info.signer)
    signed = b"\x31" + attrs.dump()[1:]  # the DER SET OF, not the [0] IMPLICIT (RFC 5652 §5.4)
    signature = signer_info["signature"].native
    algo = signer_info["signature_algorithm"].signature_algo
    public = info.signer.public_key()
    chosen = _HASHES[hash_name]()
    try:
        if algo == "ecdsa" and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, signed, ec.ECDSA(chosen))
        elif algo == "rsassa_pkcs1v15" and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, signed, padding.PKCS1v15(), chosen)
        else:
            raise TimestampError(f"unsupported token signature algorithm {algo!r}")
    except InvalidSignature:
        raise TimestampError("the TSA's signature on the token does not verify") from None


def _check_ess(values: dict[str, Any], signer: x509.Certificate) -> None:
    der = signer.public_bytes(_DER)
    v2 = values.get("signing_certificate_v2")
    v1 = values.get("signing_certificate")
    if v2 is not None:
        first = v2["certs"][0]
        name = first["hash_algorithm"]["algorithm"].native
        if name not in _HASHES or first["cert_hash"].native != digest(der, name):
            raise TimestampError("the token's SigningCertificateV2 names another certificate")
        return
    if v1 is not None:
        first = v1["certs"][0]
        if first["cert_hash"].native != hashlib.sha1(der).digest():  # noqa: S324 (RFC 2634)
            raise TimestampError("the token's SigningCertificate names another certificate")
        return
    raise TimestampError("the token has no ESS signing-certificate attribute (RFC 3161 §2.4.1)")


def _timestamping_only(
    policy: verification.Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is None or list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ValueError("a TSA certificate needs exactly the id-kp-timeStamping key purpose")


def verify_chain(
    info: TokenInfo, anchors: list[x509.Certificate], extra: tuple[x509.Certificate, ...] = ()
) -> tuple[x509.Certificate, ...]:
    """The TSA certificate chains to one of ``anchors`` at genTime (RFC 3161 §2.3)."""
    if not anchors:
        raise TimestampError("no trust anchors given for the TSA")
    ee_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.ExtendedKeyUsage, verification.Criticality.CRITICAL, _timestamping_only
    )
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(anchors))
        .time(info.gen_time)
        .extension_policies(
            ee_policy=ee_policy, ca_policy=verification.ExtensionPolicy.webpki_defaults_ca()
        )
    )
    others = [c for c in info.certificates + extra if c != info.signer]
    try:
        chain = builder.build_client_verifier().verify(info.signer, others).chain
    except verification.VerificationError as exc:
        raise TimestampError(f"the TSA certificate does not chain to an anchor: {exc}") from None
    return tuple(chain)


__all__ = [
    "QTST_STATEMENT_OID",
    "TimestampError",
    "TokenInfo",
    "digest",
    "parse",
    "verify_chain",
    "verify_signature",
]
