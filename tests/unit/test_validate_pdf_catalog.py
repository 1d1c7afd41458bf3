"""R6.4: what a PDF's catalog decides for every page — which layers are shown, whether form
fields are drawn from their values — may not change after a signature (ISO 32000-1
§8.11.4, §12.7.2; :mod:`server.validate.pdfcatalog`). Found in review: none of it is in a
page, so the page comparison missed it, and pyHanko let the second pass without a word —
the "shadow" attacks on PDF signatures.
"""

from __future__ import annotations

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import ArrayObject, DictionaryObject, NameObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers import cms_embedder

from server.validate import validate
from tests.unit.test_validate_pdf_changes import (
    ORIGINAL,
    codes,
    first_page,
    first_revision,
    messages,
    signed_by_stranger,
    updated,
    warnings,
)


def hidden_layer(writer: IncrementalPdfFileWriter, membership: bool = False) -> None:
    """A red box over the first page in an optional content group that is off (ISO
    32000-1 §8.11), or in a membership dictionary that shows it only while that group is
    on: signed, it shows nothing."""
    ocg = writer.add_object(
        DictionaryObject(
            {NameObject("/Type"): NameObject("/OCG"), NameObject("/Name"): generic.pdf_string("L")}
        )
    )
    marked = ocg
    if membership:
        ocmd = {
            "/Type": NameObject("/OCMD"),
            "/OCGs": ArrayObject([ocg]),
            "/P": NameObject("/AllOn"),
        }
        marked = writer.add_object(DictionaryObject({NameObject(k): v for k, v in ocmd.items()}))
    box = generic.StreamObject(stream_data=b"/OC /L BDC 1 0 0 rg 0 0 595 842 re f EMC")
    page = first_page(writer)
    contents = page.raw_get("/Contents")
    old = list(contents) if isinstance(contents, ArrayObject) else [contents]
    page[NameObject("/Contents")] = ArrayObject([*old, writer.add_object(box)])
    resources = DictionaryObject(dict(page["/Resources"].items()))
    resources[NameObject("/Properties")] = DictionaryObject({NameObject("/L"): marked})
    page[NameObject("/Resources")] = writer.add_object(resources)
    writer.update_container(page)
    writer.root[NameObject("/OCProperties")] = DictionaryObject(
        {
            NameObject("/OCGs"): ArrayObject([ocg]),
            NameObject("/D"): DictionaryObject({NameObject("/OFF"): ArrayObject([ocg])}),
        }
    )
    writer.update_root()


def layer_switched_on(writer: IncrementalPdfFileWriter) -> None:
    properties = writer.root["/OCProperties"]
    properties[NameObject("/D")] = DictionaryObject({NameObject("/OFF"): ArrayObject()})
    writer.update_root()


def membership_inverted(writer: IncrementalPdfFileWriter) -> None:
    marked = first_page(writer)["/Resources"]["/Properties"].raw_get("/L")
    marked.get_object()[NameObject("/P")] = NameObject("/AllOff")
    writer.mark_update(marked.reference)


def own_layer_added(writer: IncrementalPdfFileWriter) -> None:
    """A later signer's stamp on a layer of its own, hidden, and the list reordered."""
    properties = writer.root["/OCProperties"]
    stamp = writer.add_object(
        DictionaryObject(
            {NameObject("/Type"): NameObject("/OCG"), NameObject("/Name"): generic.pdf_string("S")}
        )
    )
    layers = ArrayObject([stamp, *properties["/OCGs"]])
    properties[NameObject("/OCGs")] = layers
    configuration = properties["/D"]
    configuration[NameObject("/OFF")] = ArrayObject([*configuration["/OFF"], stamp])
    configuration[NameObject("/Order")] = layers
    writer.update_root()


def layers_configured(writer: IncrementalPdfFileWriter) -> None:
    """/OCProperties where the signed document had none."""
    writer.root[NameObject("/OCProperties")] = DictionaryObject(
        {NameObject("/OCGs"): ArrayObject(), NameObject("/D"): DictionaryObject()}
    )
    writer.update_root()


def need_appearances(writer: IncrementalPdfFileWriter) -> None:
    # the signed sample's form is a direct object in the catalog; its first revision has none
    form = writer.root.setdefault(NameObject("/AcroForm"), DictionaryObject())
    form.setdefault(NameObject("/Fields"), ArrayObject())
    form[NameObject("/NeedAppearances")] = generic.BooleanObject(True)
    writer.update_root()


def default_appearance(writer: IncrementalPdfFileWriter) -> None:
    writer.root["/AcroForm"][NameObject("/DA")] = generic.pdf_string("/Helv 0 Tf 1 0 0 rg")
    writer.update_root()


async def test_r6_4_catalog_changes_to_what_every_page_shows_break_the_signature() -> None:
    """Found in review: none of these is in a page's own looks, so the pages compared equal
    and pyHanko let the second pass without a word — the "shadow" attacks. Switching on a
    layer that was signed hidden (in the catalog, or by inverting a membership's policy),
    or asking readers to draw form fields from their values instead of the appearances
    that were signed, changes what is shown."""
    for membership, attack in ((False, layer_switched_on), (True, membership_inverted)):
        layered = await signed_by_stranger(
            updated(first_revision(ORIGINAL), lambda w, m=membership: hidden_layer(w, m))
        )
        report = await validate(layered, None, [])
        assert report.intact, messages(report)
        report = await validate(updated(layered, attack), None, [])
        assert not report.intact, attack.__name__
        assert "document_modified_after_signing" in codes(report)
    # a later signer's own layer, and the order a reader lists them in, change nothing shown
    report = await validate(updated(layered, own_layer_added), None, [])
    assert report.intact and "changes_after_signing" in warnings(report)
    # layers configured where there were none may hide what was signed
    report = await validate(updated(ORIGINAL, layers_configured), None, [])
    assert not report.intact and "layers (optional content)" in messages(report)

    report = await validate(updated(ORIGINAL, need_appearances), None, [])
    assert not report.intact and "/NeedAppearances" in messages(report)


async def test_r6_4_signed_with_fields_drawn_from_values_the_forms_look_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signed with /NeedAppearances on (pyHanko's signer clears it; other software keeps
    it, as here), the form's default appearance decides how every field is drawn, and
    pyHanko does not compare it."""
    monkeypatch.setattr(
        cms_embedder, "ensure_sig_flags", lambda writer, lock_sig_flags: None
    )  # keep the flag, as other signing software does
    redrawn = await signed_by_stranger(updated(first_revision(ORIGINAL), need_appearances))
    assert (await validate(redrawn, None, [])).intact
    report = await validate(updated(redrawn, default_appearance), None, [])
    assert not report.intact and "/DA, /DR" in messages(report)


async def test_r6_4_a_catalog_that_is_not_a_dictionary_is_reported_not_crashed_on() -> None:
    """Found in review: pyHanko asserts that the catalog is a dictionary, and the
    AssertionError escaped the validation (a 500 from the API)."""
    at = ORIGINAL.rfind(b"/Root 1 0 R")
    hostile = ORIGINAL[:at] + b"/Root 8 0 R" + ORIGINAL[at + 11 :]  # object 8: a number
    previous = int(ORIGINAL.rsplit(b"startxref", 1)[1].split()[0])
    trailer = b"<< /Size 71 /Root 1 0 R /Info 2 0 R /Prev %d >>" % previous
    hostile += b"xref\n0 1\n0000000000 65535 f \ntrailer\n%s\nstartxref\n%d\n%%%%EOF\n" % (
        trailer,
        len(hostile),
    )
    report = await validate(hostile, None, [])
    assert not report.intact and "byte_range_invalid" in codes(report)


def auto_state(writer: IncrementalPdfFileWriter) -> None:
    """The layers' automatic states by usage (/AS) kept in an object of their own."""
    usage = ArrayObject(
        [
            DictionaryObject(
                {
                    NameObject("/Event"): NameObject("/View"),
                    NameObject("/Category"): ArrayObject([NameObject("/Zoom")]),
                }
            )
        ]
    )
    configuration = writer.root["/OCProperties"]["/D"]
    configuration[NameObject("/AS")] = writer.add_object(usage)
    writer.update_root()


def auto_state_rewritten(writer: IncrementalPdfFileWriter) -> None:
    """The same /AS object, rewritten under its own number for printing instead."""
    stored = writer.root["/OCProperties"]["/D"].raw_get("/AS")
    stored.get_object()[0][NameObject("/Event")] = NameObject("/Print")
    writer.mark_update(stored.reference)


async def test_r6_4_an_object_rewritten_under_its_number_is_compared_anew() -> None:
    """Found in review: one digest memo served both revisions, and it is keyed by object
    number — an /AS rewritten under the same number read as unchanged."""
    layered = await signed_by_stranger(
        updated(updated(first_revision(ORIGINAL), hidden_layer), auto_state)
    )
    assert (await validate(layered, None, [])).intact
    report = await validate(updated(layered, auto_state_rewritten), None, [])
    assert not report.intact and "layers (optional content)" in messages(report)
