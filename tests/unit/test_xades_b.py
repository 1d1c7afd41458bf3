"""The XAdES-B signer written as canonical text (server.evidence.xades_b) with EC and RSA keys:
xmlsec1 and signxml's XAdESVerifier accept its output, and a changed byte breaks it."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.exceptions import InvalidSignature
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from server.evidence import c14n
from server.evidence import xml as evidence_xml
from server.evidence.keys import SealKey
from server.evidence.xades_b import XadesBSigner, enveloped
from tests.evidence_keys import self_signed

XADES = evidence_xml.XADES_NS
DS = evidence_xml.DS_NS


def document() -> str:
    return (
        f'<Evidence{evidence_xml.NS_DECLARATIONS} version="1">'
        "<EvidenceIdentifier>x-1</EvidenceIdentifier>"
        f"<vep:Extensions>{c14n.text('Pogodba št. 7 & <>')}</vep:Extensions></Evidence>"
    )


def sign(signer: XadesBSigner, unsigned: str) -> str:
    pending = signer.prepare(unsigned)
    value = base64.b64encode(signer.signature_value(pending.signed_info)).decode()
    return enveloped(unsigned, pending.element(value))


KEYS = {
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_signature_verifies_with_signxml_and_xmlsec1(kind: str, tmp_path: Path) -> None:
    key: SealKey = KEYS[kind]()
    cert = self_signed(key)
    signer = XadesBSigner(key, [cert])
    signed = sign(signer, document())
    data = evidence_xml.to_bytes(signed)
    root = etree.fromstring(data)
    assert root[-1].tag == f"{{{DS}}}Signature"
    assert root.findtext(f"{{{evidence_xml.VEP_NS}}}Extensions") == "Pogodba št. 7 & <>"

    results = XAdESVerifier().verify(
        data, x509_cert=cert, expect_config=XAdESSignatureConfiguration(expect_references=3)
    )
    assert results[0].signed_xml is not None
    assert results[0].signed_xml.tag == root.tag

    if shutil.which("xmlsec1") is None:
        pytest.skip("xmlsec1 is not installed")
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(Encoding.PEM))
    path = tmp_path / "signed.xml"
    for content, ok in ((data, True), (data.replace(b"x-1", b"x-2"), False)):
        path.write_bytes(content)
        result = subprocess.run(
            [
                "xmlsec1",
                "--verify",
                "--trusted-pem",
                str(pem),
                "--id-attr:Id",
                f"{XADES}:SignedProperties",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode == 0) is ok, result.stderr


def test_a_changed_signed_property_is_detected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key)
    data = evidence_xml.to_bytes(sign(XadesBSigner(key, [cert]), document()))
    signing_time = etree.fromstring(data).findtext(f".//{{{XADES}}}SigningTime")
    assert signing_time is not None
    changed = data.replace(signing_time.encode(), b"2001-01-01T00:00:00+00:00")
    with pytest.raises(InvalidSignature):
        XAdESVerifier().verify(changed, x509_cert=cert, expect_config=XAdESSignatureConfiguration())


def test_a_signed_document_is_not_signed_again() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = XadesBSigner(key, [self_signed(key)])
    signed = sign(signer, document())
    with pytest.raises(ValueError, match="already signed"):
        signer.prepare(signed)
