"""R6.4: what a PDF's later revisions may change after a signature (ISO 32000-1 §7.5.6,
§12.8.2.2 DocMDP), edited here into the real DSS sample ``pdf-signed-original.pdf``.

Found in review: a later revision that made every glyph transparent, swapped the font's
glyph names, shrank the page to one point or laid a white square over a certified
("no changes") document left the page's content stream alone, so it was reported intact
with a warning. pyHanko calls such changes suspicious; what decides the verdict now is
whether the pages still show what was signed — compared by value, so the real plugtest
``Signature-P-DE_SCI-4.pdf`` (resources rewritten under a new number, an invisible
timestamp widget added) stays intact, as DSS judges it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import ArrayObject, DictionaryObject, NameObject, NumberObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfTimeStamper
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from server.validate import ValidationReport, validate
from tests.conftest import DATA
from tests.support import self_signed

ORIGINAL = (DATA / "pades" / "pdf-signed-original.pdf").read_bytes()


def updated(pdf: bytes, change: Callable[[IncrementalPdfFileWriter], None]) -> bytes:
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    change(writer)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def first_page(writer: IncrementalPdfFileWriter) -> DictionaryObject:
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    assert isinstance(page, DictionaryObject)
    return page


def font_resource(
    writer: IncrementalPdfFileWriter, kind: str
) -> tuple[generic.Reference, DictionaryObject]:
    """The first resource of ``kind`` (``/Font``, ``/ExtGState``) on the first page."""
    resources = first_page(writer)["/Resources"]
    entry = resources.raw_get(kind).get_object().raw_get(next(iter(resources[kind])))
    return entry.reference, entry.get_object()


def transparent(writer: IncrementalPdfFileWriter) -> None:
    ref, state = font_resource(writer, "/ExtGState")
    state["/ca"] = state["/CA"] = generic.FloatObject(0)
    writer.mark_update(ref)


def glyphs_swapped(writer: IncrementalPdfFileWriter) -> None:
    ref, font = font_resource(writer, "/Font")
    encoding = font.raw_get("/Encoding")
    differences = encoding.get_object()["/Differences"]
    names = [i for i, x in enumerate(differences) if isinstance(x, NameObject)]
    a, b = names[1], names[2]
    differences[a], differences[b] = differences[b], differences[a]
    indirect = isinstance(encoding, generic.IndirectObject)
    writer.mark_update(encoding.reference if indirect else ref)


def one_point_page(writer: IncrementalPdfFileWriter) -> None:
    page = first_page(writer)
    page["/MediaBox"] = ArrayObject([NumberObject(0), NumberObject(0)] + [NumberObject(1)] * 2)
    writer.update_container(page)


def resources_renumbered(writer: IncrementalPdfFileWriter) -> None:
    """The same resources, written anew under another object number: nothing shown moves."""
    page = first_page(writer)
    resources = page["/Resources"]
    page["/Resources"] = writer.add_object(DictionaryObject(dict(resources.items())))
    writer.update_container(page)


def white_square(writer: IncrementalPdfFileWriter) -> None:
    box = ArrayObject([NumberObject(0), NumberObject(0), NumberObject(595), NumberObject(842)])
    look = generic.StreamObject(
        {NameObject("/BBox"): box, NameObject("/Subtype"): NameObject("/Form")},
        stream_data=b"1 1 1 rg 0 0 595 842 re f",
    )
    square = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Square"),
            NameObject("/Rect"): box,
            NameObject("/F"): NumberObject(4),
            NameObject("/AP"): DictionaryObject({NameObject("/N"): writer.add_object(look)}),
        }
    )
    page = first_page(writer)
    page[NameObject("/Annots")] = ArrayObject([writer.add_object(square)])
    writer.update_container(page)


def codes(report: ValidationReport) -> set[str]:
    return {e.code for s in report.signatures for e in s.errors}


def warnings(report: ValidationReport) -> set[str]:
    return {w.code for s in report.signatures for w in s.warnings}


async def test_r6_4_a_change_to_what_a_page_shows_breaks_the_signature() -> None:
    assert (await validate(ORIGINAL, None, [])).intact
    for change in (transparent, glyphs_swapped, one_point_page):
        report = await validate(updated(ORIGINAL, change), None, [])
        assert not report.intact, change.__name__
        assert "document_modified_after_signing" in codes(report), change.__name__


async def test_r6_4_the_same_objects_rewritten_change_nothing_shown() -> None:
    report = await validate(updated(ORIGINAL, resources_renumbered), None, [])
    assert report.intact
    assert "changes_after_signing" in warnings(report)


async def test_r6_4_the_real_plugtest_with_rewritten_resources_stays_intact() -> None:
    report = await validate((DATA / "pades" / "Signature-P-DE_SCI-4.pdf").read_bytes(), None, [])
    assert report.input_kind == "pades" and report.intact
    assert "changes_after_signing" in warnings(report)


def as_asn1(
    key: Any, cert: x509.Certificate
) -> tuple[asn1_keys.PrivateKeyInfo, asn1_x509.Certificate]:
    """A cryptography key and certificate as pyHanko's signers take them."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        asn1_keys.PrivateKeyInfo.load(der),
        asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
    )


def first_revision(pdf: bytes) -> bytes:
    return pdf[: pdf.index(b"%%EOF") + 5] + b"\n"


async def signed_by_stranger(pdf: bytes, permissions: MDPPerm | None = None) -> bytes:
    """``pdf`` signed by a stranger's key: certified with ``permissions`` if given."""
    private, cert = as_asn1(*self_signed("Certifier", 7))
    signer = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=private,
        cert_registry=None,  # type: ignore[arg-type]
    )
    meta = PdfSignatureMetadata(
        field_name="Cert", certify=permissions is not None, docmdp_permissions=permissions
    )
    out = await signers.async_sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), meta, signer=signer)
    return out.getvalue()


async def certified(pdf: bytes, permissions: MDPPerm) -> bytes:
    """``pdf``'s first revision certified by a stranger's key with ``permissions``."""
    return await signed_by_stranger(first_revision(pdf), permissions)


async def test_r6_4_a_certification_that_permits_no_changes_is_broken_by_an_annotation() -> None:
    locked = await certified(ORIGINAL, MDPPerm.NO_CHANGES)
    assert (await validate(locked, None, [])).intact
    report = await validate(updated(locked, white_square), None, [])
    assert not report.intact and "document_modified_after_signing" in codes(report)
    assert "DocMDP P=1" in messages(report)
    # where comments are permitted, a change no rule explains is still refused (found in
    # review: only P=1 refused it)
    open_to_comments = await certified(ORIGINAL, MDPPerm.ANNOTATE)
    assert (await validate(open_to_comments, None, [])).intact
    report = await validate(updated(open_to_comments, white_square), None, [])
    assert not report.intact and "DocMDP P=3" in messages(report)
    # under an approval signature the same square is refused for what it hides
    report = await validate(updated(ORIGINAL, white_square), None, [])
    assert not report.intact and "no longer show" in messages(report)


def messages(report: ValidationReport) -> str:
    return " ".join(e.message for s in report.signatures for e in s.errors)


def forged_page(writer: IncrementalPdfFileWriter) -> None:
    page = first_page(writer)
    forged = generic.StreamObject(stream_data=b"BT /F1 48 Tf 100 700 Td (FORGED) Tj ET")
    page["/Contents"] = writer.add_object(forged)
    writer.update_container(page)


async def test_r6_4_a_document_timestamp_covers_only_what_the_pages_still_show() -> None:
    """Found in review: a page replaced after a document timestamp (PAdES-LTA's
    /DocTimeStamp) left the timestamp intact, with no warning at all."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .serial_number(9)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .public_key(key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    private, tsa_cert = as_asn1(key, cert)
    stamper = DummyTimeStamper(tsa_cert=tsa_cert, tsa_key=private)
    first = first_revision(ORIGINAL)
    out = await PdfTimeStamper(stamper).async_timestamp_pdf(
        IncrementalPdfFileWriter(BytesIO(first)), "sha256"
    )
    stamped = out.getvalue()
    report = await validate(stamped, None, [])
    assert report.intact and [t.kind for t in report.timestamps] == ["document"]
    report = await validate(updated(stamped, forged_page), None, [])
    assert not report.intact
    (stamp,) = report.timestamps
    assert not stamp.intact
    assert "document_modified_after_signing" in {e.code for e in stamp.errors}


def replies_to_each_other(writer: IncrementalPdfFileWriter) -> None:
    """Two comments answering each other (/IRT) and a link to the page itself, with the
    text made transparent too (so the change is one no rule explains)."""
    transparent(writer)
    page = first_page(writer)
    box = ArrayObject([NumberObject(10), NumberObject(10), NumberObject(20), NumberObject(20)])
    notes = [
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Text"),
                NameObject("/Rect"): box,
            }
        )
        for _ in range(2)
    ]
    first, second = (writer.add_object(n) for n in notes)
    notes[0][NameObject("/IRT")] = second
    notes[1][NameObject("/IRT")] = first
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): box,
            NameObject("/Dest"): ArrayObject([writer.root["/Pages"].raw_get("/Kids")[0]]),
        }
    )
    page[NameObject("/Annots")] = ArrayObject([first, second, writer.add_object(link)])
    writer.update_container(page)


async def test_r6_4_annotations_that_point_at_each_other_are_compared_not_crashed_on() -> None:
    """Found in review: the comparison followed every reference, so replies that answer
    each other (or a link back to its own page) recursed until Python gave up — a 500 from
    the API and a traceback from vep verify."""
    report = await validate(updated(ORIGINAL, replies_to_each_other), None, [])
    assert not report.intact and "document_modified_after_signing" in codes(report)
