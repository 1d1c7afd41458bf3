"""R6.1, R6.2, R6.5, R6.6: sealed, time-stamped evidence that independent tools verify.

Every event type is sealed with the dev PKI's provider seal and time-stamped by the live
dev TSA, then checked three ways: xmlsec1 (the XAdES signature and its chain), openssl ts
(the RFC 3161 token over the C14N of ds:SignatureValue), and ``verify_evidence``. The
PKCS#11 path signs in a SoftHSM2 token created in the test's temporary directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pkcs11
import pytest
import pytest_asyncio
from cryptography import x509
from lxml import etree

from server.devpki.generate import DevPki
from server.evidence import (
    CertRef,
    ContentPart,
    EventName,
    EvidenceEvent,
    EvidenceSealer,
    FileKeySigner,
    HttpTimeStamper,
    NotQualified,
    Party,
    Pkcs11Signer,
    SealedEvidence,
    SignerError,
    issuer_for,
    load_signer,
    sealer_from_settings,
    tsa_url_for,
    verify_evidence,
)
from server.evidence import xml as evidence_xml
from server.evidence.local_tsa import local_tsa_for
from server.settings import Settings
from tests.conftest import PkiService
from tests.evidence_keys import TestSigner

pytestmark = pytest.mark.integration

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def settings_for(pki: DevPki, **overrides: object) -> Settings:
    base = Settings(database_url="postgresql://unused", data_dir=pki.directory.parent)
    return replace(base, **overrides)  # type: ignore[arg-type]


def event(pki: DevPki, name: EventName, **overrides: object) -> EvidenceEvent:
    sender_cert = x509.load_pem_x509_certificate(pki.cert("qualified-qscd").read_bytes())
    values: dict[str, object] = {
        "event": name,
        "evidence_id": "0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10",
        "delivery_id": "d-2026-000123",
        "event_time": T0 + timedelta(minutes=5),
        "submission_time": T0,
        "sender": Party("Ana Novak", "ana.novak@vep.si", CertRef.of(sender_cert)),
        "recipients": (Party("Primer d.o.o.", "primer@vep.si"),),
        "parts": (
            ContentPart("pogodba.pdf", "application/pdf", 48_213, hashlib.sha256(b"a").hexdigest()),
            ContentPart("priloga.xml", "application/xml", 1_024, hashlib.sha256(b"b").hexdigest()),
        ),
        "reasons": (("accepted", "Sprejeto v dostavo."),),
        "subject_sha256": hashlib.sha256("Pogodba št. 7".encode()).hexdigest(),
        "kind": "return_receipt",
        "extra": (("acceptance_method", "signature"), ("related_deliveries", "d-1,d-2")),
    }
    values.update(overrides)
    return EvidenceEvent(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def file_signer(dev_pki: DevPki) -> FileKeySigner:
    return FileKeySigner(
        dev_pki.directory / "provider-seal.chain.pem", dev_pki.key("provider-seal")
    )


@pytest.fixture(scope="module")
def anchors(dev_pki: DevPki) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(dev_pki.root.read_bytes())]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def stamper(
    dev_pki: DevPki, pki_service: PkiService, http: aiohttp.ClientSession
) -> HttpTimeStamper:
    return HttpTimeStamper(tsa_url_for(settings_for(dev_pki)), http)


@pytest.fixture
def sealer(file_signer: FileKeySigner, stamper: HttpTimeStamper) -> EvidenceSealer:
    return EvidenceSealer(file_signer, stamper, issuer_for(file_signer), qualified=False)


# --- independent verifiers -----------------------------------------------------------------


def xmlsec1(pki: DevPki, document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--trusted-pem",
            str(pki.root),
            "--untrusted-pem",
            str(pki.cert("qualified-ca")),
            "--id-attr:Id",
            f"{XADES}:SignedProperties",
            str(document),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def signature_value_digest(xml: bytes) -> str:
    """SHA-256 of the exclusive C14N of ds:SignatureValue (what the TSA stamped)."""
    root = etree.fromstring(xml)
    value = root.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue")
    assert value is not None
    return hashlib.sha256(etree.tostring(value, method="c14n", exclusive=True)).hexdigest()


def encapsulated(xml: bytes) -> bytes:
    stamps = etree.fromstring(xml).findall(f".//{{{XADES}}}EncapsulatedTimeStamp")
    assert len(stamps) == 1
    return base64.b64decode(stamps[0].text or "")


def openssl_ts(
    pki: DevPki, token: bytes, hex_digest: str, tmp: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp / "token.der"
    path.write_bytes(token)
    return subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            hex_digest,
            "-token_in",
            "-in",
            str(path),
            "-CAfile",
            str(pki.root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def write(tmp: Path, sealed: SealedEvidence | bytes, name: str = "evidence.xml") -> Path:
    path = tmp / name
    path.write_bytes(sealed.xml if isinstance(sealed, SealedEvidence) else sealed)
    return path


# --- every event ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EventName))
async def test_every_event_is_sealed_and_verifies_independently(
    name: EventName,
    sealer: EvidenceSealer,
    dev_pki: DevPki,
    anchors: list[x509.Certificate],
    tmp_path: Path,
) -> None:
    ev = event(dev_pki, name)
    sealed = await sealer.seal(ev)

    assert sealed.event is name and sealed.evidence_id == ev.evidence_id
    assert sealed.sha256 == hashlib.sha256(sealed.xml).hexdigest()
    assert abs(sealed.timestamp_time - datetime.now(UTC)) < timedelta(minutes=5)
    evidence_xml.validate(sealed.xml)  # the published XSD, offline
    root = etree.fromstring(sealed.xml)
    assert root[-1].tag == f"{{{DS}}}Signature"

    result = xmlsec1(dev_pki, write(tmp_path, sealed))
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stderr + result.stdout

    digest = signature_value_digest(sealed.xml)
    stamp = openssl_ts(dev_pki, encapsulated(sealed.xml), digest, tmp_path)
    assert stamp.returncode == 0, stamp.stderr
    assert "Verification: OK" in stamp.stdout

    check = verify_evidence(sealed.xml, anchors)
    assert check.valid, check.errors
    assert check.errors == ()
    assert check.event == name.value
    assert check.evidence_id == ev.evidence_id
    assert check.timestamp_time == sealed.timestamp_time
    assert check.qualified is False
    assert check.signer_subject is not None and "VEP Dev Provider Seal" in check.signer_subject


@pytest.mark.parametrize("tsa", ["http", "local"])
async def test_seal_all_stamps_each_evidence_over_its_own_signature(
    tsa: str,
    file_signer: FileKeySigner,
    stamper: HttpTimeStamper,
    dev_pki: DevPki,
    anchors: list[x509.Certificate],
    tmp_path: Path,
) -> None:
    """One submission's evidences are sealed together (issue 4): the time-stamps, asked for
    at once, come back to the evidence whose SignatureValue each covers, in order."""
    timestamper = stamper if tsa == "http" else local_tsa_for(dev_pki.directory)
    sealer = EvidenceSealer(file_signer, timestamper, issuer_for(file_signer), qualified=False)
    events = [
        event(dev_pki, name, evidence_id=str(uuid.uuid4()))
        for name in (
            EventName.SUBMISSION_ACCEPTANCE,
            EventName.CONTENT_CONSIGNMENT,
            EventName.NOTIFICATION_FOR_ACCEPTANCE,
        )
    ]
    sealed = await sealer.seal_all(events)

    assert [(s.event, s.evidence_id) for s in sealed] == [(e.event, e.evidence_id) for e in events]
    for one in sealed:
        digest = signature_value_digest(one.xml)
        stamp = openssl_ts(dev_pki, encapsulated(one.xml), digest, tmp_path)
        assert stamp.returncode == 0, stamp.stderr
        assert verify_evidence(one.xml, anchors).valid
    assert len({signature_value_digest(one.xml) for one in sealed}) == 3


# --- tampering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"primer@vep.si", b"primer@vep.sj"), (b"<Size>48213</Size>", b"<Size>48214</Size>")],
)
async def test_a_changed_byte_is_detected(
    old: bytes,
    new: bytes,
    sealer: EvidenceSealer,
    dev_pki: DevPki,
    anchors: list[x509.Certificate],
    tmp_path: Path,
) -> None:
    sealed = await sealer.seal(event(dev_pki, EventName.CONTENT_HANDOVER))
    assert sealed.xml.count(old) == 1
    tampered = sealed.xml.replace(old, new)

    assert xmlsec1(dev_pki, write(tmp_path, tampered)).returncode != 0
    check = verify_evidence(tampered, anchors)
    assert not check.intact and not check.valid
    assert any(e.startswith("signature:") for e in check.errors)


async def test_a_timestamp_over_something_else_is_detected(
    sealer: EvidenceSealer,
    stamper: HttpTimeStamper,
    dev_pki: DevPki,
    anchors: list[x509.Certificate],
    tmp_path: Path,
) -> None:
    sealed = await sealer.seal(event(dev_pki, EventName.SUBMISSION_ACCEPTANCE))
    foreign = (await stamper.stamp(hashlib.sha256(b"something else").digest())).der
    original = base64.b64encode(encapsulated(sealed.xml))
    swapped = sealed.xml.replace(original, base64.b64encode(foreign))
    assert swapped != sealed.xml

    # The time-stamp is an unsigned property: the seal itself still verifies ...
    assert xmlsec1(dev_pki, write(tmp_path, swapped)).returncode == 0
    # ... but the token is not over this signature, for openssl and for us.
    digest = signature_value_digest(swapped)
    assert openssl_ts(dev_pki, foreign, digest, tmp_path).returncode != 0
    check = verify_evidence(swapped, anchors)
    assert check.intact and check.timestamp_intact
    assert not check.timestamp_imprint_matches and not check.valid
    assert check.timestamp_time is None


async def test_other_anchors_do_not_verify(sealer: EvidenceSealer, dev_pki: DevPki) -> None:
    sealed = await sealer.seal(event(dev_pki, EventName.CONTENT_CONSIGNMENT))
    outsider = x509.load_pem_x509_certificate(dev_pki.cert("untrusted-root-ca").read_bytes())
    check = verify_evidence(sealed.xml, [outsider])
    assert not check.intact and not check.timestamp_intact and not check.valid
    assert verify_evidence(sealed.xml, []).errors == ("signature: no trust anchors given",)


# --- R6.5: the seal key in a PKCS#11 token (SoftHSM2) -----------------------------------------


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SoftHSM2 token holding the dev PKI's provider-seal key; SOFTHSM2_CONF set."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    return conf


def import_seal_key(pki: DevPki, conf: Path) -> None:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for args in (
        ["--init-token", "--free", "--label", "vep-seal", "--pin", "1234", "--so-pin", "5678"],
        # provider-seal.key is an unencrypted PKCS#8 PEM, which softhsm2-util imports as is.
        [
            "--import",
            str(pki.key("provider-seal")),
            "--token",
            "vep-seal",
            "--label",
            "provider-seal",
            "--id",
            "01",
            "--pin",
            "1234",
        ],
    ):
        subprocess.run(["softhsm2-util", *args], env=env, check=True, capture_output=True)


async def test_sealing_through_pkcs11_softhsm(
    softhsm_token: Path,
    dev_pki: DevPki,
    stamper: HttpTimeStamper,
    anchors: list[x509.Certificate],
    tmp_path: Path,
) -> None:
    import_seal_key(dev_pki, softhsm_token)
    # python-pkcs11 keeps one initialised library per process: re-read our SOFTHSM2_CONF.
    pkcs11.lib(str(SOFTHSM)).reinitialize()
    with pytest.raises(SignerError) as wrong:
        load_signer(settings_for(dev_pki, pkcs11_library=SOFTHSM, pkcs11_pin="9999"))
    assert "9999" not in str(wrong.value) and "PinIncorrect" in str(wrong.value)

    signer = load_signer(settings_for(dev_pki, pkcs11_library=SOFTHSM, pkcs11_pin="1234"))
    assert isinstance(signer, Pkcs11Signer) and signer.hardware_backed
    assert "1234" not in repr(signer)
    try:
        sealer = EvidenceSealer(signer, stamper, issuer_for(signer), qualified=False)
        # Two at once, as a submission seals them: each signs in its own thread.
        both = await sealer.seal_all(
            [
                event(dev_pki, EventName.NOTIFICATION_FOR_ACCEPTANCE),
                event(dev_pki, EventName.CONTENT_CONSIGNMENT),
            ]
        )
        for sealed in both:
            result = xmlsec1(dev_pki, write(tmp_path, sealed))
            assert result.returncode == 0, result.stderr
            assert verify_evidence(sealed.xml, anchors).valid

        # R6.6: SoftHSM is a software token; a qualified service refuses it.
        qualified = EvidenceSealer(signer, stamper, issuer_for(signer), qualified=True)
        with pytest.raises(NotQualified) as refused:
            await qualified.seal(event(dev_pki, EventName.CONTENT_HANDOVER))
        assert refused.value.component == "seal_key"
        assert "SoftHSM" in refused.value.detail
    finally:
        signer.close()


# --- R6.6: qualified mode fails closed ------------------------------------------------------


async def test_qualified_mode_refuses_every_missing_component(
    file_signer: FileKeySigner, stamper: HttpTimeStamper, dev_pki: DevPki
) -> None:
    ev = event(dev_pki, EventName.SUBMISSION_ACCEPTANCE)

    # A key file is never qualified (R6.5/R6.6), even with a qualified seal certificate.
    sealer = EvidenceSealer(file_signer, stamper, issuer_for(file_signer), qualified=True)
    with pytest.raises(NotQualified) as refused:
        sealer.check_qualified()
    assert refused.value.component == "seal_key"
    with pytest.raises(NotQualified):
        await sealer.seal(ev)

    # A certificate without QcCompliance + QcType eseal is refused first.
    tls = FileKeySigner(dev_pki.directory / "tls-server.chain.pem", dev_pki.key("tls-server"))
    sealer = EvidenceSealer(tls, stamper, issuer_for(tls), qualified=True)
    with pytest.raises(NotQualified) as refused:
        await sealer.seal(ev)
    assert refused.value.component == "seal_certificate"

    # Seal accepted, but the dev TSA's token is not qualified (EN 319 422).
    # (the file key claiming to be in an HSM lets the test reach the TSA check)
    hardware = TestSigner(file_signer.private_key, file_signer.certificates, hardware_backed=True)
    sealer = EvidenceSealer(hardware, stamper, issuer_for(hardware), qualified=True)
    with pytest.raises(NotQualified) as refused:
        await sealer.seal(ev)
    assert refused.value.component == "tsa"

    # Start-up fails closed too.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(NotQualified):
            sealer_from_settings(settings_for(dev_pki, qualified=True), session)


async def test_sealer_from_development_settings(
    dev_pki: DevPki,
    pki_service: PkiService,
    http: aiohttp.ClientSession,
    anchors: list[x509.Certificate],
) -> None:
    settings = settings_for(dev_pki)
    assert tsa_url_for(settings) == f"{dev_pki.url_prefix}/vep-dev/tsa/tsa"
    sealer = sealer_from_settings(settings, http)
    sealed = await sealer.seal(event(dev_pki, EventName.CONTENT_DISPOSITION))
    assert b"NOT QUALIFIED" in sealed.xml and not sealed.qualified
    assert b"https://vep.si/ns/evidence/v1/Event/ContentDisposition" in sealed.xml
    check = verify_evidence(sealed.xml, anchors)
    assert check.valid and check.event == "ContentDisposition"


async def test_r6_1_schema_check_setting(
    dev_pki: DevPki, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``VEP_EVIDENCE_SCHEMA_CHECK``: on, every evidence is validated before it is issued;
    off (the default), the sealer does not parse its own output again. The model refuses
    every value the real schema would (EvidenceEvent's checks), so a schema that accepts
    no evidence at all stands in for a sealer bug here."""
    local = {"tsa_url": "local"}
    checked = sealer_from_settings(settings_for(dev_pki, evidence_schema_check=True, **local), http)
    unchecked = sealer_from_settings(settings_for(dev_pki, **local), http)
    consignment = event(dev_pki, EventName.CONTENT_CONSIGNMENT)
    evidence_xml.validate((await checked.seal(consignment)).xml)
    nothing = etree.XMLSchema(
        etree.fromstring(
            b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            b'<xs:element name="NotEvidence"/></xs:schema>'
        )
    )
    monkeypatch.setattr(evidence_xml, "schema", lambda: nothing)
    with pytest.raises(etree.DocumentInvalid):
        await checked.seal(consignment)
    assert (await unchecked.seal(consignment)).event == EventName.CONTENT_CONSIGNMENT


async def test_r6_5_local_tsa_tokens_verify_with_openssl(dev_pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """VEP_TSA_URL=local: an in-process TSA with the dev TSA key; its tokens are real."""
    import hashlib
    import subprocess

    from asn1crypto import cms, tsp

    from server.evidence.local_tsa import local_tsa_for

    digest = hashlib.sha256(b"vep").digest()
    token = (await local_tsa_for(dev_pki.directory).stamp(digest)).der
    (tmp_path / "tok.der").write_bytes(token)
    result = subprocess.run(  # noqa: ASYNC221 (a short independent check)
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            digest.hex(),
            "-token_in",
            "-in",
            str(tmp_path / "tok.der"),
            "-CAfile",
            str(dev_pki.root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "Verification: OK" in result.stdout, result.stderr
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    assert info["message_imprint"]["hashed_message"].native == digest


async def test_local_tsa_stamp_facts_are_those_of_its_token(dev_pki: DevPki) -> None:
    """The local TSA reports genTime, imprint and standing without parsing its token: they
    must be what a parser (and a verifier) reads from it, whatever the nonce and serial."""
    from server.evidence import rfc3161
    from server.evidence.local_tsa import local_tsa_for

    tsa = local_tsa_for(dev_pki.directory)
    for i in range(200):
        digest = hashlib.sha256(i.to_bytes(4, "big")).digest()
        stamp = await tsa.stamp(digest)
        info = rfc3161.parse(stamp.der)
        assert (stamp.gen_time, stamp.hash_name, stamp.imprint) == (
            info.gen_time,
            info.hash_name,
            info.imprint,
        )
        assert stamp.qualified is info.qualified is False
        if i % 50 == 0:
            rfc3161.verify_signature(info)
