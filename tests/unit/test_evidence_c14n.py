"""Evidence written as canonical text (issue 4 benchmark; R6.1, R6.2): with hostile strings in
every user-controlled field, the sealed evidence is exactly what the lxml path produced, the
digests are over what lxml's C14N gives for the parsed document, and xmlsec1, signxml,
openssl ts and the XSD accept it; a string XML cannot carry is refused before anything is
signed or time-stamped.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from server.evidence import EvidenceSealer, SealedEvidence, c14n
from server.evidence import xml as evidence_xml
from server.evidence.keys import SealKey
from server.evidence.model import (
    CertRef,
    ContentPart,
    EventName,
    EvidenceEvent,
    IssuerDetails,
    Party,
)
from server.evidence.seal import signature_value_c14n
from tests import evidence_reference as reference
from tests.evidence_keys import TestSigner, TestTimeStamper, self_signed

DS = evidence_xml.DS_NS
XADES = evidence_xml.XADES_NS
#: Every character C14N escapes, quotes, whitespace it keeps, non-ASCII, an astral emoji,
#: a CDATA end and a ready-made entity reference (which must stay text).
HOSTILE = "A&B <C> \"D\" 'E' x\r\ny\tz\rč š ž Ž 😀 ]]> &amp; &#xD;"
XMLSEC1_VERIFY = ("xmlsec1", "--verify", "--id-attr:Id", f"{XADES}:SignedProperties")
OPENSSL_TS_VERIFY = ("openssl", "ts", "-verify", "-digest")
T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def full_event(**overrides: object) -> EvidenceEvent:
    """Every user-controlled string hostile, several of everything."""
    sender_cert = CertRef(HOSTILE, "1a2b", digest_of(b"sender"))
    values: dict[str, object] = {
        "event": EventName.CONSIGNMENT_ACCEPTANCE,
        "evidence_id": "0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10",
        "delivery_id": f"d-{HOSTILE}",
        "event_time": T0 + timedelta(seconds=1, microseconds=250),
        "submission_time": T0,
        "sender": Party(HOSTILE, f"{HOSTILE}@vep.si", sender_cert),
        "recipients": (
            Party("Primer d.o.o.", "primer@vep.si"),
            Party(HOSTILE, "b<o>jan@vep.si", CertRef('CN=Č&Š,O="Ž"', "ff", digest_of(b"r"))),
            Party("", "prazno@vep.si"),
        ),
        "parts": (
            ContentPart(HOSTILE, f'text/plain; name="{HOSTILE}"', 3, digest_of(b"abc")),
            ContentPart("", "", 0, digest_of(b"")),
        ),
        "reasons": (("a&b<c>", HOSTILE), ("empty", "")),
        "subject_sha256": digest_of("Pogodba št. 7".encode()),
        "kind": "return_receipt",
        "extra": (("acceptance_method", HOSTILE), ("related_deliveries", ""), ("note", "😀")),
    }
    values.update(overrides)
    return EvidenceEvent(**values)  # type: ignore[arg-type]


EVENTS = {
    "hostile": full_event(),
    # a recipient's evidence before release: the parts by digest only (R5.3)
    "withheld": full_event(
        event=EventName.NOTIFICATION_FOR_ACCEPTANCE,
        parts=tuple(part.withheld() for part in full_event().parts),
    ),
    "bare": full_event(
        event=EventName.CONTENT_DISPOSITION,
        reasons=(),
        parts=(),
        extra=(),
        subject_sha256=None,
        recipients=(Party(HOSTILE, "r@vep.si"),),
        kind="registered",
    ),
}


@dataclass(frozen=True)
class Setup:
    sealer: EvidenceSealer
    key: SealKey
    certificate: x509.Certificate
    issuer: IssuerDetails
    stamper: TestTimeStamper
    qualified: bool


def make_setup(kind: str, qualified: bool, directory: Path) -> Setup:
    key: SealKey = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    certificate = self_signed(key, f"Seal {HOSTILE[:24]}", qualified=qualified)
    # A qualified seal needs an HSM (R6.6): the test key says it is one, which also sends
    # the private-key operation to a thread as for a real token.
    signer = TestSigner(key, (certificate,), hardware_backed=qualified)
    issuer = IssuerDetails(HOSTILE, "https://vep.si/policy?a=1&b=%3Cc%3E", CertRef.of(certificate))
    stamper = TestTimeStamper(directory, qualified=qualified)
    sealer = EvidenceSealer(signer, stamper, issuer, qualified)
    sealer.check_qualified()
    return Setup(sealer, key, certificate, issuer, stamper, qualified)


@pytest.fixture(scope="module", params=[("ec", False), ("rsa", True)], ids=["ec", "rsa-qualified"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    kind, qualified = request.param
    return make_setup(kind, qualified, tmp_path_factory.mktemp(kind))


@pytest_asyncio.fixture(scope="module")
async def sealed(setup: Setup) -> dict[str, SealedEvidence]:
    return {name: await setup.sealer.seal(ev) for name, ev in EVENTS.items()}


def parsed(data: bytes) -> tuple[etree._Element, etree._Element]:
    root = evidence_xml.parse_safely(data)
    signature = root[-1]
    assert signature.tag == f"{{{DS}}}Signature"
    return root, signature


def c14n_of(element: etree._Element, exclusive: bool = False) -> bytes:
    return bytes(etree.tostring(element, method="c14n", exclusive=exclusive))


def b64_digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_output_is_canonical_and_reference_1_is_over_the_lxml_c14n(
    setup: Setup, sealed: dict[str, SealedEvidence], name: str
) -> None:
    data = sealed[name].xml
    declaration = evidence_xml.XML_DECLARATION
    assert data.startswith(declaration)
    root, signature = parsed(data)
    # What was written is already canonical: C14N of the parse gives it back.
    assert c14n_of(root) == data[len(declaration) :]
    evidence_xml.validate(data)
    strings = root.findall(f".//{{{evidence_xml.NS}}}Name")
    assert HOSTILE in [s.text for s in strings]  # CR, quotes, emoji: all round-trip

    root.remove(signature)  # the enveloped-signature transform (XML-DSig §6.6.4)
    unsigned = c14n_of(root)
    assert unsigned == evidence_xml.render(EVENTS[name], setup.issuer, setup.qualified).encode()
    reference_1 = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert reference_1 is not None and reference_1.get("URI") == ""
    assert reference_1.findtext(f"{{{DS}}}DigestValue") == b64_digest(unsigned)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_digest_and_the_signature_are_over_lxml_c14n(
    setup: Setup, sealed: dict[str, SealedEvidence], name: str
) -> None:
    _, signature = parsed(sealed[name].xml)
    signature_id = signature.get("Id")
    by_uri = {
        r.get("URI"): r.findtext(f"{{{DS}}}DigestValue")
        for r in signature.iterfind(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    }
    properties = signature.find(f".//{{{XADES}}}SignedProperties")
    key_info = signature.find(f"{{{DS}}}KeyInfo")
    assert properties is not None and key_info is not None
    assert by_uri[f"#{signature_id}-SignedProperties"] == b64_digest(c14n_of(properties))
    assert by_uri[f"#{signature_id}-KeyInfo"] == b64_digest(c14n_of(key_info))

    # SignatureValue verifies over lxml's C14N of the parsed SignedInfo.
    signed_info = c14n_of(signature[0])
    value = base64.b64decode(signature.findtext(f"{{{DS}}}SignatureValue") or "")
    public = setup.certificate.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        half = len(value) // 2
        der = utils.encode_dss_signature(
            int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big")
        )
        public.verify(der, signed_info, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(value, signed_info, padding.PKCS1v15(), hashes.SHA256())

    # The time-stamp imprint: exclusive C14N of ds:SignatureValue, as lxml computes it.
    value_element = signature.find(f"{{{DS}}}SignatureValue")
    assert value_element is not None
    exclusive = c14n_of(value_element, exclusive=True)
    assert signature_value_c14n(value_element.text or "") == exclusive
    token = base64.b64decode(signature.findtext(f".//{{{XADES}}}EncapsulatedTimeStamp") or "")
    assert hashlib.sha256(exclusive).digest() in token  # the messageImprint's OCTET STRING


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_the_document_is_the_one_the_lxml_path_builds(
    setup: Setup, sealed: dict[str, SealedEvidence], name: str
) -> None:
    ours, signature = parsed(sealed[name].xml)
    signing_time = signature.findtext(f".//{{{XADES}}}SigningTime")
    assert signing_time is not None
    theirs = reference.build(EVENTS[name], setup.issuer, setup.qualified)
    signer = reference.LxmlXadesSigner(setup.key, [setup.certificate])
    their_signature = signer.sign(theirs, datetime.fromisoformat(signing_time), signature.get("Id"))
    our_value = signature.findtext(f"{{{DS}}}SignatureValue")
    their_value = their_signature.find(f"{{{DS}}}SignatureValue")
    assert their_value is not None
    if isinstance(setup.key, rsa.RSAPrivateKey):  # PKCS#1 v1.5 is deterministic
        assert their_value.text == our_value
    their_value.text = our_value  # ECDSA is not: take ours, as the token is over it
    token = base64.b64decode(signature.findtext(f".//{{{XADES}}}EncapsulatedTimeStamp") or "")
    reference._add_signature_timestamp(their_signature, token)
    assert c14n_of(theirs) == c14n_of(ours)
    # Element by element too (same tags, attributes, text, order).
    pairs = list(zip(theirs.iter(), ours.iter(), strict=True))
    for a, b in pairs:
        assert (a.tag, dict(a.attrib), a.text or "") == (b.tag, dict(b.attrib), b.text or "")


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_independent_verifiers_accept_it(
    setup: Setup, sealed: dict[str, SealedEvidence], name: str, tmp_path: Path
) -> None:
    data = sealed[name].xml
    results = XAdESVerifier().verify(
        data,
        x509_cert=setup.certificate,
        expect_config=XAdESSignatureConfiguration(expect_references=3),
    )
    assert results[0].signed_xml is not None

    for tool in ("xmlsec1", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    seal_pem, tsa_pem = tmp_path / "seal.pem", tmp_path / "tsa.pem"
    seal_pem.write_bytes(setup.certificate.public_bytes(Encoding.PEM))
    tsa_pem.write_bytes(setup.stamper.certificate.public_bytes(Encoding.PEM))
    path = tmp_path / "evidence.xml"
    changed = data.replace(b"\xc4\x8d", b"c", 1)  # one č of the evidence
    for content, ok in ((data, True), (changed, False)):
        path.write_bytes(content)
        result = subprocess.run(
            [*XMLSEC1_VERIFY, "--trusted-pem", str(seal_pem), str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode == 0) is ok, result.stderr

    _, signature = parsed(data)
    value = signature.find(f"{{{DS}}}SignatureValue")
    assert value is not None
    token = tmp_path / "token.der"
    token.write_bytes(
        base64.b64decode(signature.findtext(f".//{{{XADES}}}EncapsulatedTimeStamp") or "")
    )
    imprint = digest_of(c14n_of(value, exclusive=True))
    result = subprocess.run(
        [*OPENSSL_TS_VERIFY, imprint, "-token_in", "-in", str(token), "-CAfile", str(tsa_pem)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


NOT_XML = ["\x00", "\x01", "\x08", "\x0b", "\x1f", "\ufffe", "\uffff", "\ud800", "\udfff"]
WHERE = {
    "sender name": lambda bad: {"sender": Party(f"Ana{bad}", "ana@vep.si")},
    "mailbox": lambda bad: {"recipients": (Party("B", f"b{bad}@vep.si"),)},
    "part name": lambda bad: {"parts": (ContentPart(f"a{bad}.pdf", "x/y", 1, "00" * 32),)},
    "media type": lambda bad: {"parts": (ContentPart("a", f"x/{bad}", 1, "00" * 32),)},
    "reason": lambda bad: {"reasons": (("code", f"why{bad}"),)},
    "extra": lambda bad: {"extra": (("note", f"v{bad}"),)},
    "issuer name": lambda bad: {
        "sender": Party("A", "a@vep.si", CertRef(f"CN={bad}", "1", "00" * 32))
    },
}


@pytest.mark.parametrize("where", sorted(WHERE))
@pytest.mark.parametrize("bad", NOT_XML, ids=[f"U+{ord(c):04X}" for c in NOT_XML])
async def test_a_character_xml_cannot_carry_is_refused_before_signing(
    setup: Setup, where: str, bad: str
) -> None:
    stamps = setup.stamper.stamps
    with pytest.raises(ValueError, match="XML compatible"):
        await setup.sealer.seal(full_event(**WHERE[where](bad)))
    assert setup.stamper.stamps == stamps  # nothing signed or time-stamped
    # lxml refuses the same strings (the rule did not change).
    with pytest.raises(ValueError):
        etree.Element("x").text = f"a{bad}"
    await setup.sealer.seal(replace(full_event(), delivery_id="after"))
    assert setup.stamper.stamps == stamps + 1


def test_text_and_attribute_escaping_is_lxml_c14n() -> None:
    for value in (HOSTILE, "", "plain", "\x7f\x85\u2028", "\U0010fffd\ue000\ud7ff"):
        element = etree.Element("x", a=value)
        element.text = value
        expected = c14n_of(element).decode()
        assert expected == f'<x a="{c14n.attribute(value)}">{c14n.text(value)}</x>'
