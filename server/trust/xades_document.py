"""An enveloped XAdES signature over an XML document the server issued (R5.3: the
recipient may sign the vročilnica as XAdES enveloped, ETSI EN 319 132-1).

Integrity is checked by signxml against the certificate in ``ds:KeyInfo`` (the signature
math, the references, the SigningCertificate digest); the document it covers must be the
one issued, compared after canonicalisation (C14N 1.0), so nothing can be added, removed or
wrapped around it; the signer's certificate is then checked like a login (chain, OCSP/CRL,
QCStatements) by :class:`~server.trust.validation.CertificateChecker`. Parsing resolves no
entities, loads no DTD and uses no network.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from ..errors import SignatureRefused
from .validation import CertificateCheck, CertificateChecker

DS = "http://www.w3.org/2000/09/xmldsig#"
MAX_XML = 2 * 1024 * 1024
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_blank_text=False,
)


@dataclass(frozen=True)
class XadesCheck:
    signer: CertificateCheck
    format: str = "xades"


def _c14n(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, method="c14n"))


def _parse(data: bytes) -> etree._Element:
    if len(data) > MAX_XML:
        raise SignatureRefused("signature_malformed", "The signed XML is too large.")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SignatureRefused("signature_malformed", "A DTD or entity is not accepted.")
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        raise SignatureRefused("signature_malformed", "The signed XML cannot be parsed.") from None


async def verify_enveloped_xades(
    issued: bytes, submitted: bytes, checker: CertificateChecker, moment: datetime
) -> XadesCheck:
    root = _parse(submitted)
    signatures = root.findall(f"{{{DS}}}Signature")
    if len(signatures) != 1:
        reason = "no_signature" if not signatures else "multiple_signatures"
        raise SignatureRefused(reason, "Exactly one enveloped ds:Signature is expected.")
    cert_text = root.findtext(
        f"{{{DS}}}Signature/{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"
    )
    if not cert_text:
        raise SignatureRefused("signature_malformed", "The signature carries no certificate.")
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode("".join(cert_text.split())))
    except ValueError:
        raise SignatureRefused(
            "signature_malformed", "The signing certificate is unreadable."
        ) from None
    try:
        results = XAdESVerifier().verify(
            submitted,
            x509_cert=cert.public_bytes(Encoding.PEM).decode(),
            expect_config=XAdESSignatureConfiguration(expect_references=True),
            parser=_PARSER,
        )
    except (InvalidSignature, InvalidInput) as exc:
        raise SignatureRefused(
            "signature_invalid", "The XAdES signature does not verify.", check=str(exc)[:300]
        ) from None
    signed = results[0].signed_xml
    if signed is None or _c14n(signed) != _c14n(_parse(issued)):
        raise SignatureRefused(
            "wrong_document", "The signature is not over the document that was issued."
        )
    signer = await checker.check(cert.public_bytes(Encoding.DER), moment)
    return XadesCheck(signer)
