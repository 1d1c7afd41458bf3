"""The template XAdES-B signer (server.evidence.xades_b) with EC and RSA keys: xmlsec1 and
signxml's XAdESVerifier accept its output, and a changed byte breaks it."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.exceptions import InvalidSignature
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from server.evidence import xml as evidence_xml
from server.evidence.keys import SealKey
from server.evidence.xades_b import XadesBSigner

XADES = evidence_xml.XADES_NS
DS = evidence_xml.DS_NS


def self_signed(key: SealKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "XAdES template test")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def document() -> etree._Element:
    root = etree.Element(f"{{{evidence_xml.NS}}}Evidence", nsmap=evidence_xml.NSMAP)
    etree.SubElement(root, f"{{{evidence_xml.NS}}}EvidenceIdentifier").text = "x-1"
    etree.SubElement(root, f"{{{evidence_xml.VEP_NS}}}Extensions").text = "Pogodba št. 7 & <>"
    return root


KEYS = {
    "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_signature_verifies_with_signxml_and_xmlsec1(kind: str, tmp_path: Path) -> None:
    key = KEYS[kind]()
    cert = self_signed(key)
    signer = XadesBSigner(key, [cert])
    root = document()
    signature = signer.sign(root)
    assert root[-1] is signature
    data = evidence_xml.to_bytes(root)

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
    root = document()
    XadesBSigner(key, [cert]).sign(root)
    data = evidence_xml.to_bytes(root)
    signing_time = etree.fromstring(data).findtext(f".//{{{XADES}}}SigningTime")
    assert signing_time is not None
    changed = data.replace(signing_time.encode(), b"2001-01-01T00:00:00+00:00")
    with pytest.raises(InvalidSignature):
        XAdESVerifier().verify(changed, x509_cert=cert, expect_config=XAdESSignatureConfiguration())


def test_a_signed_document_is_not_signed_again() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = XadesBSigner(key, [self_signed(key)])
    root = document()
    signer.sign(root)
    with pytest.raises(ValueError, match="already signed"):
        signer.sign(root)
