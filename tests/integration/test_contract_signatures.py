"""R2.1: the subscriber's qualified signature over the exact contract the server issued.

Signed with the development PKI (``server.tools.sign``, as a subscriber would with
``vep sign-contract``) and checked against the live OCSP/CRL service, plus real
third-party signatures from the DSS test suite (tests/data/SOURCES.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from asn1crypto import pem
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from server.contracts import ContractData, render_contract
from server.devpki.generate import DevPki
from server.errors import CertificateRefused, SignatureRefused
from server.tools import sign as sign_tool
from server.tools.sign import async_sign_cades_detached, async_sign_pades
from server.trust.certs import parse
from server.trust.signatures import MAX_SUBMISSION_BYTES, SignatureCheck, verify_signed_contract
from server.trust.validation import CertificateChecker, load_certificates
from tests.conftest import DATA, PkiService

pytestmark = pytest.mark.integration

PASSWORD = b"vep"
CONTRACT = ContractData(
    registration_id="5d1c2a8e-0000-4000-8000-000000000021",
    terms_version="2026-01",
    issued_at=datetime(2026, 11, 21, 14, 3, tzinfo=UTC),
    kind="natural",
    name="Ana Novak",
    tax_number="12345679",
    registration_number=None,
    vat_payer=None,
    iban=None,
    postal_address={
        "street": "Čopova ulica 1",
        "postcode": "1000",
        "city": "Ljubljana",
        "country": "SI",
    },
    email="ana.novak@example.si",
    mailbox_address="ana.novak@vep.si",
    mailbox_kind="single",
    einvoice=False,
    price_list=(("Varni elektronski predal / mailbox, monthly", "2,00 EUR + DDV"),),
)


@pytest.fixture(scope="module")
def issued() -> bytes:
    return render_contract(CONTRACT)


@pytest_asyncio.fixture
async def checker(dev_pki: DevPki, pki_service: PkiService) -> AsyncIterator[CertificateChecker]:
    """Built as ``server/app.py`` builds it, over the dev PKI and its live OCSP/CRL."""
    async with aiohttp.ClientSession() as session:
        yield CertificateChecker(
            load_certificates([dev_pki.root]),
            load_certificates([dev_pki.cert("qualified-ca")]),
            "require",
            session,
        )


def now() -> datetime:
    return datetime.now(UTC)


def person_of(dev_pki: DevPki, identity: str) -> str:
    return parse(dev_pki.cert(identity).read_bytes())[1].person_id


async def pades(dev_pki: DevPki, identity: str, pdf: bytes) -> bytes:
    return await async_sign_pades(pdf, dev_pki.p12(identity).read_bytes(), PASSWORD)


async def cades(dev_pki: DevPki, identity: str, data: bytes) -> bytes:
    return await async_sign_cades_detached(data, dev_pki.p12(identity).read_bytes(), PASSWORD)


async def refused(
    issued: bytes, submitted: bytes, checker: CertificateChecker, moment: datetime | None = None
) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as info:
        await verify_signed_contract(issued, submitted, checker, moment or now())
    assert info.value.status == 422
    return info.value


def first_revision(pdf: bytes) -> bytes:
    """The bytes before the signature's incremental update: the document that was signed."""
    reader = PdfFileReader(BytesIO(pdf))
    (signature,) = reader.embedded_signatures
    startxref = reader.xrefs.get_startxref_for_revision(signature.signed_revision - 1)
    end = re.compile(rb"%%EOF(\r\n|\r|\n)?").search(pdf, startxref)
    assert end is not None
    return pdf[: end.end()]


# --- accepted ------------------------------------------------------------------------


async def test_r2_1_pades_by_a_qualified_signer_is_accepted(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    signed = await pades(dev_pki, "qualified-qscd", issued)
    result = await verify_signed_contract(issued, signed, checker, now())
    assert isinstance(result, SignatureCheck)
    assert result.format == "pades"
    assert result.signer.facts.person_id == person_of(dev_pki, "qualified-qscd")
    assert result.signer.loa.value == "high"
    assert result.signer.revocation_source in {"ocsp", "crl"}
    assert result.digest_algorithm == "sha256"
    assert result.signing_time is not None  # PAdES: the signature dictionary's /M
    record = json.loads(json.dumps(result.as_record()))
    assert record["format"] == "pades"
    assert record["signer"]["person_id"] == result.signer.facts.person_id
    assert record["signer"]["fingerprint"] == result.signer.facts.fingerprint
    assert record["check"]["loa"] == "high"
    assert len(record["document_sha256"]) == 64


@pytest.mark.parametrize("armour", ["der", "pem"])
async def test_r2_1_detached_cades_is_accepted(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes, armour: str
) -> None:
    signature = await cades(dev_pki, "qualified", issued)
    submitted = signature if armour == "der" else pem.armor("PKCS7", signature)
    result = await verify_signed_contract(issued, submitted, checker, now())
    assert result.format == "cades"
    assert result.signer.facts.person_id == person_of(dev_pki, "qualified")
    assert result.signer.loa.value == "substantial"
    assert result.signing_time is not None  # the signing-time attribute
    assert abs((now() - result.signing_time).total_seconds()) < 300
    assert result.as_record()["signing_time"] == result.signing_time.isoformat()


async def test_r2_1_signed_by_another_person_is_a_valid_signature_of_someone_else(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    """The signature is sound; that the signer is not the registering person is the
    caller's comparison of person ids (registration refuses it)."""
    result = await verify_signed_contract(
        issued, await pades(dev_pki, "delegate", issued), checker, now()
    )
    assert result.signer.facts.person_id == person_of(dev_pki, "delegate")
    assert result.signer.facts.person_id != person_of(dev_pki, "qualified-qscd")


# --- the signer's certificate ---------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "reason"),
    [("non-qualified", "not_qualified"), ("revoked", "revoked"), ("expired", "expired")],
)
async def test_r2_1_signer_certificate_is_checked_like_a_login(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes, identity: str, reason: str
) -> None:
    for signed in (await pades(dev_pki, identity, issued), await cades(dev_pki, identity, issued)):
        with pytest.raises(CertificateRefused) as info:
            await verify_signed_contract(issued, signed, checker, now())
        assert info.value.reason == reason


async def test_r2_1_signer_outside_the_anchors_is_untrusted(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    with pytest.raises(CertificateRefused) as info:
        await verify_signed_contract(
            issued, await cades(dev_pki, "untrusted", issued), checker, now()
        )
    assert info.value.reason == "untrusted"


# --- not over the issued document -----------------------------------------------------


async def test_r2_1_cades_over_other_bytes_is_the_wrong_document(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    signature = await cades(dev_pki, "qualified-qscd", issued + b"\n")
    assert (await refused(issued, signature, checker)).reason == "wrong_document"


async def test_r2_1_pades_of_another_contract_is_the_wrong_document(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    other = render_contract(replace(CONTRACT, mailbox_address="ana@vep.si"))
    signed = await pades(dev_pki, "qualified-qscd", other)
    assert (await refused(issued, signed, checker)).reason == "wrong_document"


async def test_r2_1_update_after_the_signature_is_the_wrong_document(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    """Anything appended after signing is unsigned (ETSI EN 319 142-1: the signature must
    cover the whole file here), even a harmless-looking metadata update."""
    signed = await pades(dev_pki, "qualified-qscd", issued)
    writer = IncrementalPdfFileWriter(BytesIO(signed))
    writer.root["/Lang"] = generic.TextStringObject("en")
    writer.update_root()
    out = BytesIO()
    writer.write(out)
    problem = await refused(issued, out.getvalue(), checker)
    assert problem.reason == "wrong_document"
    assert problem.data["coverage"] != "ENTIRE_FILE"


async def test_r2_1_signing_update_that_rewrites_the_page_is_the_wrong_document(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    """A signer can change objects in the very update that carries the signature: the
    bytes start with the issued PDF and the signature covers everything, yet the page
    shows other terms. Only the signature field may be added."""
    writer = IncrementalPdfFileWriter(BytesIO(issued))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (Free forever) Tj ET")
    page["/Contents"] = writer.add_object(forged)
    writer.update_container(page)
    meta = signers.PdfSignatureMetadata(
        field_name="Podpis", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    signer = signers.SimpleSigner.load_pkcs12_data(
        dev_pki.p12("qualified-qscd").read_bytes(), other_certs=(), passphrase=PASSWORD
    )
    signed = (await signers.async_sign_pdf(writer, meta, signer=signer)).getvalue()
    problem = await refused(issued, signed, checker)
    assert problem.reason == "wrong_document"
    assert "/Contents" in problem.data["check"]


async def test_r2_1_enveloping_cms_is_not_the_detached_signature(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    signer = signers.SimpleSigner.load_pkcs12_data(
        dev_pki.p12("qualified-qscd").read_bytes(), other_certs=(), passphrase=PASSWORD
    )
    enveloping = await signer.async_sign_general_data(
        issued, "sha256", detached=False, use_cades=True
    )
    assert (await refused(issued, enveloping.dump(), checker)).reason == "wrong_document"


# --- not intact, not a signature ------------------------------------------------------


async def test_r2_1_tampered_pdf_is_an_invalid_signature(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    signed = bytearray(await pades(dev_pki, "qualified-qscd", issued))
    at = signed.index(b"Subscription contract")  # in the /Title, inside the signed range
    signed[at] ^= 0x20  # "S" → "s"
    assert (await refused(issued, bytes(signed), checker)).reason == "signature_invalid"


async def test_r2_1_weak_digest_is_an_invalid_signature(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    signer = signers.SimpleSigner.load_pkcs12_data(
        dev_pki.p12("qualified-qscd").read_bytes(), other_certs=(), passphrase=PASSWORD
    )
    sha1 = await signer.async_sign_general_data(issued, "sha1", detached=True, use_cades=True)
    assert (await refused(issued, sha1.dump(), checker)).reason == "signature_invalid"


async def test_r2_1_two_signatures_are_refused(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    once = await pades(dev_pki, "qualified-qscd", issued)
    meta = signers.PdfSignatureMetadata(
        field_name="Podpis2", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    signer = signers.SimpleSigner.load_pkcs12_data(
        dev_pki.p12("delegate").read_bytes(), other_certs=(), passphrase=PASSWORD
    )
    twice = await signers.async_sign_pdf(
        IncrementalPdfFileWriter(BytesIO(once)), meta, signer=signer
    )
    problem = await refused(issued, twice.getvalue(), checker)
    assert problem.reason == "multiple_signatures"
    assert problem.data["count"] == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage",
        b"",
        b"%PDF-1.7\n%garbage",
        b"-----BEGIN PKCS7-----\nbm90IGEgQ01T\n-----END PKCS7-----\n",
        bytes(MAX_SUBMISSION_BYTES + 1),
        # an offset of thousands of digits: int() of it raised ValueError (a 500)
        b"%PDF-1.7\n/ByteRange [0 1 2 " + b"9" * 5000 + b"]\n%%EOF\n",
    ],
    ids=["text", "empty", "pdf-header", "pem", "too-big", "absurd-byte-range"],
)
async def test_r2_1_garbage_is_malformed(
    checker: CertificateChecker, issued: bytes, garbage: bytes
) -> None:
    assert (await refused(issued, garbage, checker)).reason == "signature_malformed"


async def test_r2_1_unsigned_pdf_has_no_signature(
    checker: CertificateChecker, issued: bytes
) -> None:
    assert (await refused(issued, issued, checker)).reason == "no_signature"


# --- real third-party signatures (DSS test suite) -------------------------------------


async def test_dss_corrupted_pdf_is_invalid_and_its_visible_original_is_not_our_contract(
    checker: CertificateChecker,
) -> None:
    original = (DATA / "pades" / "pdf-signed-original.pdf").read_bytes()
    corrupted = (DATA / "pades" / "pdf-signed-corrupted.pdf").read_bytes()
    signed_document = first_revision(original)
    assert original.startswith(signed_document) and len(signed_document) < len(original)

    problem = await refused(signed_document, corrupted, checker)
    assert problem.reason == "signature_invalid"

    # intact, over exactly its first revision — but its signature is visible: a widget's
    # appearance is drawn over the page, so it is not accepted as a signed contract
    problem = await refused(signed_document, original, checker)
    assert problem.reason == "wrong_document"
    assert "visible signature widget" in problem.data["check"]


async def test_dss_detached_cades_over_hello_world(checker: CertificateChecker) -> None:
    p7s = (DATA / "cades" / "cades-bes-signeddata-detached.p7s").read_bytes()
    with pytest.raises(CertificateRefused) as info:
        await verify_signed_contract(b"Hello World", p7s, checker, now())
    assert info.value.reason == "untrusted"
    assert (await refused(b"Hello World!", p7s, checker)).reason == "wrong_document"


# --- vep sign-contract ----------------------------------------------------------------


@pytest.mark.parametrize("form", ["--pades", "--cades"])
async def test_sign_contract_command_output_is_accepted(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes, tmp_path: Path, form: str
) -> None:
    parser = argparse.ArgumentParser(prog="vep")
    sign_tool.add_cli(parser.add_subparsers(dest="command", required=True))
    contract, output = tmp_path / "pogodba.pdf", tmp_path / "signed"
    contract.write_bytes(issued)
    p12 = str(dev_pki.p12("qualified-qscd"))
    args = parser.parse_args(["sign-contract", "--p12", p12, form, str(contract), str(output)])
    # the command runs its own event loop, so not on this test's loop
    assert await asyncio.to_thread(sign_tool.run, args) == 0
    result = await verify_signed_contract(issued, output.read_bytes(), checker, now())
    assert result.format == form[2:]
    assert result.signer.facts.person_id == person_of(dev_pki, "qualified-qscd")


async def test_sign_contract_command_with_a_wrong_password_fails_cleanly(
    dev_pki: DevPki, issued: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "pogodba.pdf"
    contract.write_bytes(issued)
    args = argparse.Namespace(
        p12=dev_pki.p12("qualified-qscd"),
        password="wrong",
        pades=True,
        cades=False,
        input=contract,
        output=tmp_path / "signed.pdf",
    )
    assert await asyncio.to_thread(sign_tool.run, args) == 1
    assert "cannot sign" in capsys.readouterr().err
    assert not (tmp_path / "signed.pdf").exists()


async def test_r2_1_visible_signature_that_paints_over_the_contract_is_refused(
    dev_pki: DevPki, checker: CertificateChecker, issued: bytes
) -> None:
    """A signature widget's appearance is drawn over the page: a page-sized stamp saying
    other terms would show a different contract than the one issued (found in review)."""
    from pyhanko import stamp

    meta = signers.PdfSignatureMetadata(
        field_name="Podpis", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    signer = signers.SimpleSigner.load_pkcs12_data(
        dev_pki.p12("qualified-qscd").read_bytes(), other_certs=(), passphrase=PASSWORD
    )
    pdf_signer = signers.PdfSigner(
        meta,
        signer=signer,
        stamp_style=stamp.TextStampStyle(stamp_text="CENA: 0,00 EUR ZA VEDNO"),
        new_field_spec=fields.SigFieldSpec("Podpis", box=(0, 0, 600, 850)),
    )
    visible = await pdf_signer.async_sign_pdf(IncrementalPdfFileWriter(BytesIO(issued)))
    problem = await refused(issued, visible.getvalue(), checker)
    assert problem.reason == "wrong_document"
    assert "visible signature widget" in problem.data["check"]
