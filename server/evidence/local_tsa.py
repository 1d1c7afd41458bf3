"""An in-process RFC 3161 TSA for development and benchmarks (R6.5: "a local TSA in
development and tests"), selected with ``VEP_TSA_URL=local``.

It signs real tokens (RFC 3161 §2.4.2 TSTInfo in CMS SignedData, RFC 5652, with the ESS
signing-certificate-v2 attribute of RFC 5816) with the development PKI's TSA key and
certificate, and the answer passes the same §2.4.2 checks as an external TSA's. It takes
the HTTP round trip to the dev TSA service out of the hot path, so a benchmark measures
VEP rather than certomancer; it is never qualified (R6.6).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import algos, cms, pem, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import rfc3161
from .errors import TimestampError
from .timestamper import check_response


def _der(data: bytes) -> bytes:
    return pem.unarmor(data)[2] if pem.detect(data) else data


#: The policy under which the local TSA issues tokens (ours; never a qualified policy).
POLICY = "1.3.6.1.4.1.57264.9.1"


class LocalTimeStamper:
    def __init__(self, tsa_cert: Path, tsa_key: Path) -> None:
        try:
            self._cert = x509.Certificate.load(_der(tsa_cert.read_bytes()))
            key = serialization.load_pem_private_key(tsa_key.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise TimestampError(f"cannot load the local TSA from {tsa_cert}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TimestampError("the local TSA needs an EC key")
        self._key = key
        self._serial = secrets.randbits(62)
        # Encoded once: asn1crypto re-encodes a loaded certificate placed in a new structure,
        # which cost more than the whole signature.
        self._certs_der = cms.CertificateSet([self._cert]).dump()
        self._sid_der = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": self._cert.issuer,
                    "serial_number": self._cert.serial_number,
                }
            }
        ).dump()
        self._cert_hash = hashlib.sha256(self._cert.dump()).digest()

    def _token(self, request: tsp.TimeStampReq) -> cms.ContentInfo:
        self._serial += 1
        now = datetime.now(UTC)
        info = tsp.TSTInfo(
            {
                "version": 1,
                "policy": POLICY,
                "message_imprint": request["message_imprint"],
                "serial_number": self._serial,
                "gen_time": now,
                "nonce": request["nonce"],
            }
        )
        content = info.dump()
        cert_hash = self._cert_hash
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(content).digest()]}
                ),
                cms.CMSAttribute(
                    {
                        "type": "signing_certificate_v2",
                        "values": [{"certs": [{"cert_hash": cert_hash}]}],
                    }
                ),
            ]
        )
        signature = self._key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier.load(self._sid_der),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": cms.ParsableOctetString(content),
                },
                "certificates": cms.CertificateSet.load(self._certs_der),
                "signer_infos": [signer],
            }
        )
        return cms.ContentInfo({"content_type": "signed_data", "content": signed})

    async def timestamp(self, digest: bytes, hash_name: str = "sha256") -> bytes:
        if len(digest) != len(rfc3161.digest(b"", hash_name)):
            raise TimestampError(f"a {hash_name} digest has another length")
        nonce = secrets.randbits(63) | 1
        request = tsp.TimeStampReq(
            {
                "version": 1,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": hash_name},
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        )
        response = tsp.TimeStampResp(
            {"status": {"status": "granted"}, "time_stamp_token": self._token(request)}
        )
        return check_response(response.dump(), digest, hash_name, nonce).der


def local_tsa_for(pki_dir: Path) -> LocalTimeStamper:
    return LocalTimeStamper(pki_dir / "tsa.pem", pki_dir / "keys" / "tsa.key.pem")
