"""Seal a receipt PDF: PAdES baseline B-T with the provider's seal (R6.3, R6.5, R6.6).

PAdES baseline signatures (ETSI EN 319 142-1 §6). Level B-B: one incremental update with
an invisible signature field, ``/SubFilter /ETSI.CAdES.detached``, SHA-256, ESS
signing-certificate-v2 and the seal's chain in the CMS; the claimed signing time is the
signature dictionary's /M. Level B-T: an RFC 3161 signature time-stamp over the signature
value, as an unsigned attribute, from the same TSA the evidence uses
(:func:`server.evidence.tsa_url_for`).

pyHanko signs through :class:`SealKeyPdfSigner`, which wraps the key object the evidence
signer already holds (:mod:`server.evidence.signer`) instead of pyHanko's ``SimpleSigner``:
``SimpleSigner.sign_raw`` re-parses its DER key on every signature, and a key in a PKCS#11
token has no DER at all. The same wrapper therefore serves both: a file key signs inline,
a token key (:class:`~server.evidence.hsm.TokenEcKey`, through the signer's one logged-in
session and its lock) signs in a worker thread. The wrapper is built once per signer.

R6.6, fail closed: in qualified mode every time-stamp token must be qualified (EN 319 422
qtstStatement or a QcCompliance TSA); otherwise :class:`NotQualified` and no receipt.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from io import BytesIO

import aiohttp
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper

from ..evidence import rfc3161
from ..evidence.errors import NotQualified, SignerError
from ..evidence.hsm import Pkcs11Signer
from ..evidence.signer import FileKeySigner

FIELD_NAME = "VEP-Seal"
DIGEST = "sha256"
REASON = "Potrdilo VEP / VEP receipt"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class SealKeyPdfSigner(signers.Signer):
    """A pyHanko signer over the seal key object of a :class:`FileKeySigner` or
    :class:`Pkcs11Signer` (R6.5): chain converted once, key never re-parsed."""

    def __init__(self, seal: FileKeySigner | Pkcs11Signer) -> None:
        chain = [
            asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in seal.certificates
        ]
        super().__init__(signing_cert=chain[0])
        for certificate in chain:
            self.cert_registry.register(certificate)
        self._key = seal.private_key
        self._in_thread = seal.hardware_backed
        self.description = seal.token_description

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm not in _HASHES:
            raise SignerError(f"unsupported digest {digest_algorithm!r} for the receipt seal")
        if dry_run:  # size estimate only: no token round trip for a placeholder
            return bytes(self._max_signature_size())
        if self._in_thread:
            return await asyncio.to_thread(self._sign, data, digest_algorithm)
        return self._sign(data, digest_algorithm)

    def _sign(self, data: bytes, digest_algorithm: str) -> bytes:
        algorithm = _HASHES[digest_algorithm]()
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(algorithm))
        return self._key.sign(data, PKCS1v15(), algorithm)

    def _max_signature_size(self) -> int:
        octets = (self._key.key_size + 7) // 8
        if isinstance(self._key, rsa.RSAPrivateKey):
            return octets
        return 2 * (octets + 3) + 3  # DER SEQUENCE of two INTEGERs, each with a sign octet


class ReceiptTimeStamper(HTTPTimeStamper):
    """pyHanko's RFC 3161 client on our aiohttp session; in qualified mode it accepts only
    qualified tokens (R6.6), and it checks every token's TSA signature on arrival."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        qualified: bool = False,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(url, timeout=timeout, session=session)
        self.qualified = qualified

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        token: cms.ContentInfo = await super().async_timestamp(message_digest, md_algorithm)
        info = rfc3161.parse(token.dump())
        rfc3161.verify_signature(info)
        if self.qualified and not info.qualified:
            raise NotQualified(
                "tsa",
                f"the time-stamp of {info.signer.subject.rfc4514_string()} is not qualified "
                "(no EN 319 422 qtstStatement, no QcCompliance)",
            )
        return token


class PdfSealer:
    """Seals PDFs with one seal key and one TSA; build once, use for every receipt."""

    def __init__(
        self, signer: FileKeySigner | Pkcs11Signer, timestamper: ReceiptTimeStamper
    ) -> None:
        self._signer = pdf_signer_for(signer)
        self._certificate = signer.certificates[0]
        self._timestamper = timestamper
        self._meta = signers.PdfSignatureMetadata(
            field_name=FIELD_NAME,
            md_algorithm=DIGEST,
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=REASON,
        )

    async def seal(self, pdf: bytes) -> bytes:
        """``pdf`` with a PAdES B-T signature appended as one incremental update."""
        now = datetime.now(UTC)
        leaf = self._certificate
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise SignerError(
                f"the seal certificate is outside its validity period "
                f"({leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
            )
        writer = IncrementalPdfFileWriter(BytesIO(pdf))
        output = await signers.async_sign_pdf(
            writer, self._meta, signer=self._signer, timestamper=self._timestamper
        )
        return bytes(output.getvalue())


_pdf_signers: weakref.WeakKeyDictionary[FileKeySigner | Pkcs11Signer, SealKeyPdfSigner] = (
    weakref.WeakKeyDictionary()
)


def pdf_signer_for(signer: FileKeySigner | Pkcs11Signer) -> SealKeyPdfSigner:
    """The pyHanko signer for ``signer``, built once per signer object (a PKCS#11 signer's
    entry lives as long as the process: its token key refers back to it)."""
    pdf_signer = _pdf_signers.get(signer)
    if pdf_signer is None:
        pdf_signer = _pdf_signers[signer] = SealKeyPdfSigner(signer)
    return pdf_signer


async def seal_pdf(
    pdf: bytes,
    signer: FileKeySigner | Pkcs11Signer,
    tsa_url: str,
    session: aiohttp.ClientSession,
    *,
    qualified: bool = False,
) -> bytes:
    """``pdf`` sealed PAdES-B-T by ``signer`` with a time-stamp from ``tsa_url`` (R6.3).

    With ``qualified`` every time-stamp token must be qualified (R6.6). Raises
    :class:`NotQualified`, :class:`SignerError`, or pyHanko's ``SigningError`` /
    ``TimestampRequestError`` when the TSA cannot be used.

    The pyHanko signer is built once per ``signer``; the time-stamp client is not kept, so
    each call asks the TSA twice (pyHanko sizes the signature with a first token). A
    long-lived :class:`PdfSealer` (as :class:`~server.receipts.ReceiptIssuer` holds) asks
    once per PDF.
    """
    timestamper = ReceiptTimeStamper(tsa_url, session, qualified=qualified)
    return await PdfSealer(signer, timestamper).seal(pdf)


__all__ = [
    "DIGEST",
    "FIELD_NAME",
    "PdfSealer",
    "ReceiptTimeStamper",
    "SealKeyPdfSigner",
    "pdf_signer_for",
    "seal_pdf",
]
