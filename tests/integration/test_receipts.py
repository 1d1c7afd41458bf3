"""R6.3, R6.6: PDF receipts for evidence, sealed PAdES-B-T by the provider.

Real evidence is sealed with the dev PKI's provider seal and time-stamped by the live dev
TSA; its receipt is rendered, sealed and time-stamped the way the application does it
(``receipt_issuer_from_settings``) and then validated with pyHanko against the dev root,
fetching OCSP/CRL from the live service. The text is read back through each font's
ToUnicode map, as a PDF reader would extract it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import aiohttp
import pkcs11
import pytest
import pytest_asyncio
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

from server.contracts.render import DEFAULT_FONT
from server.devpki.generate import DevPki
from server.evidence import (
    CertRef,
    ContentPart,
    EventName,
    EvidenceEvent,
    EvidenceSealer,
    NotQualified,
    Party,
    Pkcs11Signer,
    SealedEvidence,
    load_signer,
    sealer_from_settings,
    tsa_url_for,
)
from server.receipts import (
    PdfSealer,
    ReceiptData,
    ReceiptDataError,
    ReceiptIssuer,
    ReceiptTimeStamper,
    receipt_data_from_evidence,
    receipt_issuer_from_settings,
    render_receipt,
    seal_pdf,
    title_for,
)
from server.receipts.fonts import compact_fonts
from server.settings import Settings
from tests.conftest import PkiService
from tests.support import make_settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
DELIVERY_ID = "7d3f61a2-5b0e-4c8e-9a41-0c2b6f1e9d77"
PARTS = (
    ContentPart("pogodba.pdf", "application/pdf", 48_213, hashlib.sha256(b"a").hexdigest()),
    ContentPart("priloga.xml", "application/xml", 1_024, hashlib.sha256(b"b").hexdigest()),
)


def settings_for(pki: DevPki, **overrides: object) -> Settings:
    return make_settings(pki, "postgresql://unused", **overrides)


def event(pki: DevPki, name: EventName, evidence_id: str) -> EvidenceEvent:
    sender_cert = x509.load_pem_x509_certificate(pki.cert("qualified-qscd").read_bytes())
    return EvidenceEvent(
        event=name,
        evidence_id=evidence_id,
        delivery_id=DELIVERY_ID,
        event_time=T0 + timedelta(minutes=5),
        submission_time=T0,
        sender=Party("Ana Novak", "ana.novak@vep.si", CertRef.of(sender_cert)),
        recipients=(Party("Primer d.o.o.", "primer@vep.si"),),
        parts=PARTS,
        reasons=(("accepted", "Sprejeto v dostavo."),),
        subject_sha256=hashlib.sha256("Pogodba št. 7".encode()).hexdigest(),
        kind="return_receipt",
    )


@pytest_asyncio.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
def sealer(dev_pki: DevPki, pki_service: PkiService, http: aiohttp.ClientSession) -> EvidenceSealer:
    return sealer_from_settings(settings_for(dev_pki), http)


@pytest.fixture(scope="module")
def issuer(dev_pki: DevPki, pki_service: PkiService, http: aiohttp.ClientSession) -> ReceiptIssuer:
    """Built as the application builds it at start-up."""
    return receipt_issuer_from_settings(settings_for(dev_pki), http)


async def seal(sealer: EvidenceSealer, pki: DevPki, name: EventName) -> SealedEvidence:
    evidence_id = {
        EventName.SUBMISSION_ACCEPTANCE: "0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10",
        EventName.CONSIGNMENT_ACCEPTANCE: "5c0d7a4e-91b2-4f6a-8d3e-7a1b2c3d4e5f",
    }.get(name, "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a")
    return await sealer.seal(event(pki, name, evidence_id))


async def validate(pki: DevPki, pdf: bytes, http: aiohttp.ClientSession) -> PdfSignatureStatus:
    """pyHanko's verdict with the dev root as the only anchor, revocation fetched live."""
    root = asn1_x509.Certificate.load(pem.unarmor(pki.root.read_bytes())[2])
    context = ValidationContext(
        trust_roots=[root],
        allow_fetching=True,
        fetchers=AIOHttpFetcherBackend(http).get_fetchers(),
    )
    (signature,) = PdfFileReader(BytesIO(pdf)).embedded_signatures
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    status: PdfSignatureStatus = await async_validate_pdf_signature(
        signature, context, ts_validation_context=context
    )
    return status


def assert_pades_b_t(status: PdfSignatureStatus) -> None:
    assert status.intact and status.valid and status.trusted, status.summary()
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.md_algorithm == "sha256"
    stamp = status.timestamp_validity
    assert stamp is not None, "no signature time-stamp (PAdES B-T)"
    assert stamp.intact and stamp.valid and stamp.trusted
    assert abs(stamp.timestamp - datetime.now(UTC)) < timedelta(minutes=5)
    assert status.signing_cert.subject.native["common_name"] == "VEP Dev Provider Seal"


# --- reading the text back ---------------------------------------------------------------

_TOKEN = re.compile(rb"/(F\d+)\s+[\d.]+\s+Tf|\(((?:\\.|[^\\)])*)\)\s*Tj", re.DOTALL)
_ESCAPE = re.compile(rb"\\([nrtbf()\\]|[0-7]{1,3})")
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1].isdigit():
            return bytes([int(code, 8) & 0xFF])
        return _SIMPLE.get(code, code)

    return _ESCAPE.sub(one, literal)


def _to_unicode(cmap: bytes) -> dict[int, str]:
    pairs = re.findall(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>", cmap)
    return {int(code, 16): bytes.fromhex(text.decode()).decode("utf-16-be") for code, text in pairs}


def pdf_text(pdf: bytes) -> str:
    """The text of every page, decoded through each font's ToUnicode map (fpdf2 writes
    two-byte glyph codes in literal strings), whitespace collapsed."""
    reader = PdfFileReader(BytesIO(pdf))
    out: list[str] = []
    for page_ref in reader.root["/Pages"]["/Kids"]:
        page = page_ref.get_object()
        fonts = page["/Resources"]["/Font"]
        maps = {str(name)[1:]: _to_unicode(fonts[name]["/ToUnicode"].data) for name in fonts}
        current: dict[int, str] = {}
        for match in _TOKEN.finditer(page["/Contents"].data):
            if match.group(1) is not None:
                current = maps[match.group(1).decode()]
                continue
            raw = _unescape(match.group(2))
            codes = (int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
            out.append("".join(current.get(code, "\ufffd") for code in codes))
    return " ".join(" ".join(out).split())


# --- R6.3: the receipt validates and says what happened ----------------------------------


@pytest.mark.parametrize(
    "name", [EventName.SUBMISSION_ACCEPTANCE, EventName.CONSIGNMENT_ACCEPTANCE]
)
async def test_r6_3_receipt_is_pades_b_t_and_states_the_evidence(
    dev_pki: DevPki,
    sealer: EvidenceSealer,
    issuer: ReceiptIssuer,
    http: aiohttp.ClientSession,
    name: EventName,
) -> None:
    sealed = await seal(sealer, dev_pki, name)
    started = time.perf_counter()
    receipt = await issuer.receipt_for(sealed.xml)
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"\nreceipt for {name.value}: {elapsed_ms:.0f} ms, {len(receipt)} bytes")

    assert_pades_b_t(await validate(dev_pki, receipt, http))

    text = pdf_text(receipt)
    assert title_for(name) in text
    assert DELIVERY_ID in text
    assert sealed.evidence_id in text
    evidence_sha256 = hashlib.sha256(sealed.xml).hexdigest()
    assert evidence_sha256 == sealed.sha256
    assert evidence_sha256 in text.replace(" ", "")
    for part in PARTS:
        assert part.name in text and part.sha256 in text
    assert "Ana Novak" in text and "ana.novak@vep.si" in text and "primer@vep.si" in text
    # R6.6: a development receipt says so, in both languages.
    assert "ni kvalificiran" in text and "NI KVALIFICIRANO" in text
    assert "not qualified" in text and "NOT QUALIFIED" in text
    # 09:35 UTC is 10:35 in Ljubljana in November (CET).
    assert "2026-11-21 09:35:00 UTC" in text
    assert "21. 11. 2026 10:35:00 CET (Europe/Ljubljana)" in text


async def test_r6_3_receipt_takes_well_under_a_second(
    dev_pki: DevPki, sealer: EvidenceSealer, issuer: ReceiptIssuer
) -> None:
    sealed = await seal(sealer, dev_pki, EventName.CONTENT_CONSIGNMENT)
    await issuer.receipt_for(sealed.xml)  # warm: the TSA's first token sizes the signature
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        await issuer.receipt_for(sealed.xml)
    per_receipt_ms = (time.perf_counter() - started) * 1000 / rounds
    render_started = time.perf_counter()
    for _ in range(rounds):
        issuer.render(sealed.xml)
    render_ms = (time.perf_counter() - render_started) * 1000 / rounds
    print(f"\nreceipt: {per_receipt_ms:.0f} ms each, of which rendering {render_ms:.0f} ms")
    assert per_receipt_ms < 1000


async def test_r6_3_every_event_has_its_own_title(
    dev_pki: DevPki, sealer: EvidenceSealer, issuer: ReceiptIssuer
) -> None:
    titles = {title_for(name) for name in EventName}
    assert len(titles) == len(EventName)
    assert title_for(EventName.ACCEPTANCE_REJECTION_EXPIRY) == (
        "Fikcija vročitve (15 dni) / Deemed service (15 days)"
    )
    sealed = await seal(sealer, dev_pki, EventName.ACCEPTANCE_REJECTION_EXPIRY)
    text = pdf_text(issuer.render(sealed.xml))
    assert "Fikcija vročitve (15 dni) / Deemed service (15 days)" in text


async def test_r6_3_seal_pdf_appends_a_signature_to_the_rendered_pdf(
    dev_pki: DevPki, sealer: EvidenceSealer, http: aiohttp.ClientSession
) -> None:
    """The function form, with the uncut system font (as without a font cache)."""
    settings = settings_for(dev_pki)
    signer = load_signer(settings)
    assert not isinstance(signer, Pkcs11Signer)
    evidence = await seal(sealer, dev_pki, EventName.SUBMISSION_REJECTION)
    pdf = render_receipt(receipt_data_from_evidence(evidence.xml), DEFAULT_FONT)
    sealed = await seal_pdf(pdf, signer, tsa_url_for(settings), http)
    assert sealed.startswith(pdf)  # one incremental update of the rendered bytes
    assert_pades_b_t(await validate(dev_pki, sealed, http))


# --- the data comes from the sealed evidence, parsed safely -------------------------------


async def test_r6_3_receipt_data_is_read_from_the_evidence(
    dev_pki: DevPki, sealer: EvidenceSealer
) -> None:
    sealed = await seal(sealer, dev_pki, EventName.CONSIGNMENT_ACCEPTANCE)
    data = receipt_data_from_evidence(sealed.xml)
    assert data.event is EventName.CONSIGNMENT_ACCEPTANCE
    assert data.evidence_id == sealed.evidence_id
    assert data.delivery_id == DELIVERY_ID
    assert data.delivery_kind == "return_receipt"
    assert data.event_time == T0 + timedelta(minutes=5) and data.submission_time == T0
    assert (data.sender.name, data.sender.mailbox) == ("Ana Novak", "ana.novak@vep.si")
    assert [(r.name, r.mailbox) for r in data.recipients] == [("Primer d.o.o.", "primer@vep.si")]
    assert data.parts == PARTS
    assert data.reasons == (("accepted", "Sprejeto v dostavo."),)
    assert data.subject_sha256 == hashlib.sha256("Pogodba št. 7".encode()).hexdigest()
    assert data.issuer_name == "VEP Provider d.o.o. (development)"
    assert data.qualified is False
    assert data.timestamp_time == sealed.timestamp_time
    assert data.evidence_sha256 == sealed.sha256
    # The same evidence renders to the same bytes.
    assert render_receipt(data) == render_receipt(data)


@pytest.mark.parametrize(
    "document",
    [
        b"not xml",
        b"<Evidence xmlns='http://uri.etsi.org/19522/v1#'/>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
    ],
)
def test_r6_3_anything_but_our_evidence_is_refused(document: bytes) -> None:
    with pytest.raises(ReceiptDataError):
        receipt_data_from_evidence(document)


def test_r6_3_fonts_are_cut_once_and_what_they_lack_is_transliterated(
    tmp_path: Path,
) -> None:
    font = compact_fonts(DEFAULT_FONT, tmp_path)
    assert font.parent.parent == tmp_path and font.name == DEFAULT_FONT.name
    assert font.stat().st_size < DEFAULT_FONT.stat().st_size / 4
    assert compact_fonts(DEFAULT_FONT, tmp_path) == font  # made once, then reused
    assert compact_fonts(tmp_path / "missing.ttf", tmp_path) == tmp_path / "missing.ttf"
    data = ReceiptData(
        evidence_id="0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10",
        event=EventName.CONTENT_CONSIGNMENT,
        delivery_id=DELIVERY_ID,
        delivery_kind="registered",
        event_time=T0,
        submission_time=T0,
        sender=Party("Đorđe Čeč 李", "dj@vep.si"),
        recipients=(Party("Ελένη Иванова", "e@vep.si"),),
        parts=PARTS,
        reasons=(),
        subject_sha256=None,
        acceptance_method=None,
        issuer_name="VEP",
        policy_id="https://vep.si/policy/evidence/v1",
        qualified=True,
        timestamp_time=None,
        evidence_sha256=hashlib.sha256(b"x").hexdigest(),
    )
    text = pdf_text(render_receipt(data, font))
    assert "Đorđe Čeč ?" in text and "Ελένη Иванова" in text
    assert "KVALIFICIRANO." in text and "QUALIFIED." in text
    assert "NI KVALIFICIRANO" not in text and "not qualified" not in text
    # Without the font: core fonts, transliterated, never a failure.
    assert render_receipt(data, tmp_path / "missing.ttf").startswith(b"%PDF-")


# --- R6.6: qualified mode fails closed ----------------------------------------------------


async def test_r6_6_a_qualified_seal_refuses_a_non_qualified_time_stamp(
    dev_pki: DevPki, issuer: ReceiptIssuer, sealer: EvidenceSealer, http: aiohttp.ClientSession
) -> None:
    settings = settings_for(dev_pki)
    stamper = ReceiptTimeStamper(tsa_url_for(settings), http, qualified=True)
    pdf = issuer.render((await seal(sealer, dev_pki, EventName.CONTENT_CONSIGNMENT)).xml)
    with pytest.raises(NotQualified) as refused:
        await PdfSealer(load_signer(settings), stamper).seal(pdf)
    assert refused.value.component == "tsa"


def test_r6_6_a_qualified_issuer_refuses_a_key_file(
    dev_pki: DevPki, pki_service: PkiService, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(NotQualified) as refused:
        receipt_issuer_from_settings(settings_for(dev_pki, qualified=True), http)
    assert refused.value.component == "seal_key"


# --- R6.5: the seal key in a PKCS#11 token (SoftHSM2) -------------------------------------

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dev_pki: DevPki) -> Path:
    """A fresh SoftHSM2 token holding the dev PKI's provider-seal key (as test_evidence)."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for args in (
        ["--init-token", "--free", "--label", "vep-seal", "--pin", "1234", "--so-pin", "5678"],
        [
            "--import", str(dev_pki.key("provider-seal")), "--token", "vep-seal",
            "--label", "provider-seal", "--id", "01", "--pin", "1234",
        ],
    ):  # fmt: skip
        subprocess.run(["softhsm2-util", *args], env=env, check=True, capture_output=True)
    pkcs11.lib(str(SOFTHSM)).reinitialize()  # python-pkcs11 keeps one library per process
    return conf


async def test_r6_5_receipt_sealed_through_pkcs11(
    softhsm_token: Path,
    dev_pki: DevPki,
    sealer: EvidenceSealer,
    http: aiohttp.ClientSession,
) -> None:
    settings = settings_for(dev_pki, pkcs11_library=SOFTHSM, pkcs11_pin="1234")
    signer = load_signer(settings)
    assert isinstance(signer, Pkcs11Signer)
    try:
        issuer = receipt_issuer_from_settings(settings, http, signer)
        sealed = await seal(sealer, dev_pki, EventName.CONTENT_HANDOVER)
        receipt = await issuer.receipt_for(sealed.xml)
        assert_pades_b_t(await validate(dev_pki, receipt, http))
        assert "Potrdilo o prevzemu vsebine / Proof of content handover" in pdf_text(receipt)
    finally:
        signer.close()
