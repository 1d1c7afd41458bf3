"""A XAdES-B-B enveloped signature written as canonical text (ETSI EN 319 132-1, XML-DSig 1.1).

Why text: the signature used to be an lxml template, deep-copied per seal and
canonicalised three times (the document, SignedProperties and KeyInfo, then SignedInfo);
with the document built with lxml as well, that was most of a seal's CPU while the
private-key operation is a few per cent of it (issue 4 benchmark). Here every element is
written in its canonical form (C14N 1.0, :mod:`.c14n`), so each digest is SHA-256 of a
string built here:

- Reference 1 (URI "", enveloped-signature transform then C14N 1.0, XML-DSig §4.4.3.2 and
  §6.6.4): the caller's document is already its own canonical text, and the transform
  removes exactly the signature this module inserts as the root's last child with no text
  around it, so the digest is over the document as given;
- References 2 and 3 (SignedProperties, EN 319 132-1 §4.3.4 and §5.2; KeyInfo,
  XML-DSig §4.5) carry no Transforms, which XML-DSig §4.4.3.2 reads as inclusive C14N 1.0
  of a document subset: the element with the root's namespace declarations on it
  (:func:`.c14n.apex`, C14N 1.0 §2.3); KeyInfo's text is constant per signer but its Id;
- SignedInfo is canonicalised the same way (``ds:CanonicalizationMethod`` C14N 1.0,
  XML-DSig §4.3.1) and signed; only that operation needs the key (:meth:`signature_value`),
  so a PKCS#11 key can sign in a thread while everything else stays on the event loop.

The output is the structure signxml's ``XAdESSigner`` wrote (and that xmlsec1, signxml's
``XAdESVerifier``, :mod:`server.evidence.verify` and ``schemas/evidence`` accept):
- ``ds:Signature/@Id``; SignedInfo with inclusive C14N 1.0, ECDSA-SHA256 or RSA-SHA256;
- Reference 1: URI "" (Id, enveloped-signature + C14N 1.0 transforms), SHA-256;
- Reference 2: the SignedProperties (``Type`` …#SignedProperties, EN 319 132-1 §4.3.4);
- Reference 3: KeyInfo;
- SignatureValue (ECDSA as r‖s, XML-DSig 1.1 §6.4.3; RSA PKCS#1 v1.5);
- KeyInfo/X509Data with the chain (§4.5.4), no KeyValue;
- Object/QualifyingProperties/SignedProperties: SigningTime (EN 319 132-1 §5.2.1),
  SigningCertificateV2 (§5.2.2.2), SignedDataObjectProperties/DataObjectFormat (§5.2.4)
  pointing at Reference 1; the caller may add UnsignedProperties (XAdES-T).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding

from .c14n import apex, text
from .keys import ECDSA_SHA256, SealKey
from .xml import DIGEST_METHOD, NS_DECLARATIONS, digest_element

C14N_URI = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED_URI = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ECDSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
RSA_SHA256_URI = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
DESCRIPTION = "ETSI EN 319 522 evidence (VEP format 1)"
MIME_TYPE = "application/xml"

_TRANSFORMS = (
    f'<ds:Transforms><ds:Transform Algorithm="{ENVELOPED_URI}"></ds:Transform>'
    f'<ds:Transform Algorithm="{C14N_URI}"></ds:Transform></ds:Transforms>'
)
#: What the Ids here look like: NCNames (XML-DSig §4.2, ``ID``) that need no escaping.
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_SIGNATURE_END = "</xades:QualifyingProperties></ds:Object></ds:Signature>"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pem_lines(der: bytes) -> str:
    """base64 in PEM's 64-character lines, as signxml wrote X509Certificate; whitespace in
    base64Binary is ignored by readers, and LF needs no escaping in C14N."""
    return "".join(line + "\n" for line in textwrap.wrap(_b64(der), 64))


def _sha256_b64(canonical: str) -> str:
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class PendingSignature:
    """A signature up to its value: what the key signs, and the text around the value."""

    signature_id: str
    #: The canonical SignedInfo (C14N 1.0 document subset): the input of the signature.
    signed_info: bytes
    head: str  # ds:Signature start tag and SignedInfo, as in the document
    tail: str  # KeyInfo, then Object/QualifyingProperties up to its SignedProperties

    def element(self, signature_value: str, unsigned_properties: str = "") -> str:
        """The ``ds:Signature`` text with the base64 ``signature_value`` and, optionally,
        the canonical ``xades:UnsignedProperties`` (outside what is signed)."""
        return (
            f"{self.head}<ds:SignatureValue>{signature_value}</ds:SignatureValue>"
            f"{self.tail}{unsigned_properties}{_SIGNATURE_END}"
        )


def enveloped(document: str, signature: str) -> str:
    """``document`` with ``signature`` as the last child of its root, no text around it,
    so that the enveloped-signature transform gives back ``document`` (XML-DSig §6.6.4)."""
    end = document.rindex("</")
    return document[:end] + signature + document[end:]


class XadesBSigner:
    """Signs canonical ``Evidence`` texts with one seal key and chain (XAdES-B-B, enveloped).

    ``declarations`` are the namespace declarations on the document's root, in C14N order;
    they must declare the ``ds`` and ``xades`` prefixes the signature uses. The signer keeps
    no per-seal state, so one serves every seal (and threads, for a PKCS#11 key).
    """

    def __init__(
        self, key: SealKey, chain: Sequence[x509.Certificate], declarations: str = NS_DECLARATIONS
    ) -> None:
        if not chain:
            raise ValueError("the seal needs its certificate chain")
        self._key = key
        ecdsa = isinstance(key, ec.EllipticCurvePrivateKey)
        if not ecdsa and not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the seal key is neither EC nor RSA")
        self._half = (key.key_size + 7) // 8
        self._declarations = declarations
        method = ECDSA_SHA256_URI if ecdsa else RSA_SHA256_URI
        self._methods = (
            f'<ds:CanonicalizationMethod Algorithm="{C14N_URI}"></ds:CanonicalizationMethod>'
            f'<ds:SignatureMethod Algorithm="{method}"></ds:SignatureMethod>'
        )
        ders = [cert.public_bytes(Encoding.DER) for cert in chain]
        certificates = "".join(
            f"<ds:X509Certificate>{_pem_lines(der)}</ds:X509Certificate>" for der in ders
        )
        # KeyInfo is the same for every seal but its Id: in the document and as the apex.
        self._key_info_rest = f'-KeyInfo"><ds:X509Data>{certificates}</ds:X509Data></ds:KeyInfo>'
        self._key_info_apex = f'<ds:KeyInfo{declarations} Id="'
        # EN 319 132-1 §5.2.2.2: the signing certificate first, then its CAs.
        self._signing_certificate = (
            "<xades:SigningCertificateV2>"
            + "".join(
                f"<xades:Cert>{digest_element('xades:CertDigest', hashlib.sha256(der).hexdigest())}"
                "</xades:Cert>"
                for der in ders
            )
            + "</xades:SigningCertificateV2>"
        )
        self._data_object_format = (
            f"<xades:Description>{text(DESCRIPTION)}</xades:Description>"
            f"<xades:MimeType>{text(MIME_TYPE)}</xades:MimeType>"
        )

    def prepare(
        self,
        document: str,
        signing_time: datetime | None = None,
        signature_id: str | None = None,
    ) -> PendingSignature:
        """Everything of the signature of ``document`` (the canonical text of an unsigned
        root element) but its value; ``signature_id`` only for tests that must reproduce
        a signature (it is random otherwise)."""
        end = document.rindex("</")
        if document.endswith("</ds:Signature>", 0, end):
            raise ValueError("the document is already signed")
        document_digest = _sha256_b64(document)
        if signature_id is not None and not _ID.fullmatch(signature_id):
            raise ValueError(f"not a plain XML ID: {signature_id!r}")
        sid = signature_id or f"Signature-{secrets.token_hex(8).upper()}"
        when = (signing_time or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        signed_properties = (
            f'<xades:SignedProperties Id="{sid}-SignedProperties">'
            f"<xades:SignedSignatureProperties><xades:SigningTime>{when}</xades:SigningTime>"
            f"{self._signing_certificate}</xades:SignedSignatureProperties>"
            "<xades:SignedDataObjectProperties>"
            f'<xades:DataObjectFormat ObjectReference="#{sid}-Document">'
            f"{self._data_object_format}</xades:DataObjectFormat>"
            "</xades:SignedDataObjectProperties></xades:SignedProperties>"
        )
        properties_digest = _sha256_b64(apex(signed_properties, self._declarations))
        key_info_digest = _sha256_b64(self._key_info_apex + sid + self._key_info_rest)
        signed_info = (
            f"<ds:SignedInfo>{self._methods}"
            f'<ds:Reference Id="{sid}-Document" URI="">{_TRANSFORMS}{DIGEST_METHOD}'
            f"<ds:DigestValue>{document_digest}</ds:DigestValue></ds:Reference>"
            f'<ds:Reference Type="{SIGNED_PROPERTIES_TYPE}" URI="#{sid}-SignedProperties">'
            f"{DIGEST_METHOD}<ds:DigestValue>{properties_digest}</ds:DigestValue>"
            f'</ds:Reference><ds:Reference URI="#{sid}-KeyInfo">{DIGEST_METHOD}'
            f"<ds:DigestValue>{key_info_digest}</ds:DigestValue></ds:Reference>"
            "</ds:SignedInfo>"
        )
        return PendingSignature(
            signature_id=sid,
            signed_info=apex(signed_info, self._declarations).encode("utf-8"),
            head=f'<ds:Signature Id="{sid}">{signed_info}',
            tail=(
                f'<ds:KeyInfo Id="{sid}{self._key_info_rest}<ds:Object>'
                f'<xades:QualifyingProperties Target="#{sid}">{signed_properties}'
            ),
        )

    def signature_value(self, signed_info: bytes) -> bytes:
        """The private-key operation over the canonical SignedInfo (the only one)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(key.sign(signed_info, ECDSA_SHA256))
            return r.to_bytes(self._half, "big") + s.to_bytes(self._half, "big")
        return key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())


__all__ = ["PendingSignature", "XadesBSigner", "enveloped"]
