"""An in-process RFC 3161 TSA for development and benchmarks (R6.5: "a local TSA in
development and tests"), selected with ``VEP_TSA_URL=local``.

It signs real tokens (RFC 3161 §2.4.2 TSTInfo in CMS SignedData, RFC 5652, with the ESS
signing-certificate-v2 attribute of RFC 5816) with the development PKI's TSA key and
certificate; openssl ts and our verifier accept them. It takes the HTTP round trip to the
dev TSA service out of the hot path, so a benchmark measures VEP rather than certomancer;
it is never qualified (R6.6).

Why DER is assembled by hand: building a token with asn1crypto objects cost ~6.4 ms, more
than everything else in a seal together. The constant parts (certificate, signer id,
algorithm identifiers, the signing-certificate attribute) are encoded once with asn1crypto;
per token only the TSTInfo, two attributes and the signature are written. The token is not
parsed back: its genTime, imprint and standing are what was just written (parsing it with
asn1crypto cost more than making it). :meth:`LocalTimeStamper.self_test` parses and fully
verifies one token at start-up, and the tests check its tokens with openssl ts.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import algos, cms, core, pem, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..trust.certs import qc_info
from . import rfc3161
from .errors import TimestampError
from .keys import ECDSA_SHA256
from .timestamper import Stamp

#: The policy under which the local TSA issues tokens (ours; never a qualified policy).
POLICY = "1.3.6.1.4.1.57264.9.1"


def _der(data: bytes) -> bytes:
    return pem.unarmor(data)[2] if pem.detect(data) else data


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _attribute(type_der: bytes, value_der: bytes) -> bytes:
    return _tlv(0x30, type_der + _tlv(0x31, value_der))


class LocalTimeStamper:
    def __init__(self, tsa_cert: Path, tsa_key: Path) -> None:
        try:
            cert = x509.Certificate.load(_der(tsa_cert.read_bytes()))
            key = serialization.load_pem_private_key(tsa_key.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise TimestampError(f"cannot load the local TSA from {tsa_cert}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TimestampError("the local TSA needs an EC key")
        self._key = key
        # R6.6: a token is qualified by the TSA certificate's QcCompliance (we add no
        # EN 319 422 qtstStatement); the dev TSA's certificate has none.
        self._qualified = qc_info(cert).compliance
        self._serial = secrets.randbits(62)
        sha256 = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
        self._policy = core.ObjectIdentifier(POLICY).dump()
        self._sha256 = sha256
        self._ecdsa = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump()
        self._sid = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": cert.issuer,
                    "serial_number": cert.serial_number,
                }
            }
        ).dump()
        self._certificates = _tlv(0xA0, cert.dump())  # [0] IMPLICIT CertificateSet
        self._content_type_attr = cms.CMSAttribute(
            {"type": "content_type", "values": ["tst_info"]}
        ).dump()
        self._signing_cert_attr = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [{"certs": [{"cert_hash": hashlib.sha256(cert.dump()).digest()}]}],
            }
        ).dump()
        self._signing_time_type = core.ObjectIdentifier("1.2.840.113549.1.9.5").dump()
        self._message_digest_type = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()
        self._tst_info_type = core.ObjectIdentifier("1.2.840.113549.1.9.16.1.4").dump()
        self._signed_data_type = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()

    def _token(self, imprint_der: bytes, nonce: int, now: datetime) -> bytes:
        self._serial += 1
        tst_info = _tlv(
            0x30,
            _integer(1)
            + self._policy
            + imprint_der
            + _integer(self._serial)
            + _tlv(0x18, now.strftime("%Y%m%d%H%M%SZ").encode())
            + _integer(nonce),
        )
        attributes = sorted(
            [
                self._content_type_attr,
                _attribute(
                    self._signing_time_type, _tlv(0x17, now.strftime("%y%m%d%H%M%SZ").encode())
                ),
                _attribute(
                    self._message_digest_type, _tlv(0x04, hashlib.sha256(tst_info).digest())
                ),
                self._signing_cert_attr,
            ]
        )
        attributes_der = b"".join(attributes)  # DER SET OF: sorted encodings (X.690 §11.6)
        signature = self._key.sign(_tlv(0x31, attributes_der), ECDSA_SHA256)
        signer_info = _tlv(
            0x30,
            _integer(1)
            + self._sid
            + self._sha256
            + _tlv(0xA0, attributes_der)
            + self._ecdsa
            + _tlv(0x04, signature),
        )
        encapsulated = _tlv(0x30, self._tst_info_type + _tlv(0xA0, _tlv(0x04, tst_info)))
        signed_data = _tlv(
            0x30,
            _integer(3)
            + _tlv(0x31, self._sha256)
            + encapsulated
            + self._certificates
            + _tlv(0x31, signer_info),
        )
        return _tlv(0x30, self._signed_data_type + _tlv(0xA0, signed_data))

    async def stamp(self, digest: bytes, hash_name: str = "sha256") -> Stamp:
        if hash_name != "sha256" or len(digest) != 32:
            raise TimestampError("the local TSA time-stamps SHA-256 digests")
        nonce = secrets.randbits(63) | 1
        imprint = _tlv(0x30, self._sha256 + _tlv(0x04, digest))
        now = datetime.now(UTC).replace(microsecond=0)
        token = self._token(imprint, nonce, now)
        return Stamp(token, now, "sha256", digest, self._qualified)

    async def stamp_all(self, digests: Sequence[bytes], hash_name: str = "sha256") -> list[Stamp]:
        """One after the other: a token made here never waits, so a task each would only
        add work."""
        return [await self.stamp(digest, hash_name) for digest in digests]

    def self_test(self) -> None:
        """Sign one token and check its signature fully (start-up: the per-token check of
        our own in-process signature is skipped for speed)."""
        token = self._token(_tlv(0x30, self._sha256 + _tlv(0x04, bytes(32))), 1, datetime.now(UTC))
        rfc3161.verify_signature(rfc3161.parse(token))


def local_tsa_for(pki_dir: Path) -> LocalTimeStamper:
    tsa = LocalTimeStamper(pki_dir / "tsa.pem", pki_dir / "keys" / "tsa.key.pem")
    tsa.self_test()
    return tsa
