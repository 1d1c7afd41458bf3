"""Whether a signed PDF is the issued contract plus only its signature (R2.1, PAdES).

A PAdES signature (ETSI EN 319 142-1) is added to a PDF as an incremental update
(ISO 32000-1 §7.5.6): the signer appends a revision to the issued bytes and its ByteRange
covers the whole file but the signature's own /Contents. That the signed file begins with
the issued bytes does not prove what a viewer shows: the update can replace any object of
the issued document, a page's content included. So, for
:func:`~server.trust.signatures.verify_signed_contract`, this module checks

- :func:`check_coverage`: the ByteRange covers every byte but exactly the signature's own
  /Contents (nothing unsigned, nothing appended after the signature);
- :func:`check_signed_revision`: the cross-reference chain runs through the issued
  sections, the signature's revision is the one right after them and the last one, and
  that revision rewrites no object of the issued document except what adding a signature
  field needs.

pyHanko's own difference analysis would do the last part, but it assumes the base
revision already has a form (/AcroForm), and the issued contract, rendered by fpdf2, has
none; so the rule is ours, and strict. Every refusal is ``wrong_document``
(:class:`~server.errors.SignatureRefused`).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, NoReturn

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from ..errors import SignatureRefused

#: What pyHanko raises on input it cannot make sense of (besides asn1crypto's ValueError).
PARSE_ERRORS = (PdfError, ValueError, TypeError, KeyError, IndexError, AttributeError)
#: Catalog entries a signing update may add or change (pyHanko's list, plus /Perms).
_CATALOG_KEYS_SIGNING_MAY_SET = frozenset(
    {"/AcroForm", "/DSS", "/Extensions", "/MarkInfo", "/Metadata", "/Perms", "/Version"}
)
#: Entries of the form a signing update may write (no /XFA, no /NeedAppearances).
_ACROFORM_KEYS = frozenset({"/Fields", "/SigFlags", "/DR", "/DA"})


def failure_message(exc: Exception) -> str:
    """The most specific text of a parsing or validation error, for a refusal's ``check``."""
    return str(getattr(exc, "failure_message", None) or exc or type(exc).__name__)


def _refuse(reason: str, detail: str, **data: Any) -> NoReturn:
    raise SignatureRefused(reason, detail, **data)


def check_coverage(sig: EmbeddedPdfSignature, submitted: bytes) -> None:
    """The ByteRange covers every byte but exactly the signature's own /Contents string."""
    byte_range = [int(n) for n in sig.byte_range]
    contents_hex = b"<" + bytes(sig.pkcs7_content).hex().encode("ascii") + b">"
    if (
        sig.coverage != SignatureCoverageLevel.ENTIRE_FILE
        or len(byte_range) != 4
        or byte_range[0] != 0
        or byte_range[2] + byte_range[3] != len(submitted)
        or submitted[byte_range[1] : byte_range[2]].lower() != contents_hex
    ):
        _refuse(
            "wrong_document",
            "The signature does not cover the whole file: something was added or left "
            "unsigned (an update after the signature, or an unusual byte range).",
            coverage=getattr(sig.coverage, "name", str(sig.coverage)),
            byte_range=byte_range,
        )


def check_signed_revision(reader: PdfFileReader, sig: EmbeddedPdfSignature, issued: bytes) -> None:
    """The signature's revision directly follows the issued ones and changes only itself."""
    try:
        issued_xrefs = PdfFileReader(BytesIO(issued)).xrefs
    except PARSE_ERRORS as exc:  # our own document: a bug, but say so as a refusal
        _refuse("wrong_document", "The issued document cannot be read.", check=failure_message(exc))
    issued_revisions = int(issued_xrefs.total_revisions)
    revisions = int(reader.xrefs.total_revisions)
    # the update's /Prev chain must lead through the issued cross-reference sections
    # (a chain to a section of its own would make "the previous revision" anything)
    same_history = revisions > issued_revisions and all(
        reader.xrefs.get_startxref_for_revision(i) == issued_xrefs.get_startxref_for_revision(i)
        for i in range(issued_revisions)
    )
    if (
        not same_history
        or sig.signed_revision != issued_revisions
        or revisions != issued_revisions + 1
    ):
        _refuse(
            "wrong_document",
            "The signature must be the one update appended to the contract as issued.",
            issued_revisions=issued_revisions,
            signed_revision=int(sig.signed_revision),
            revisions=revisions,
        )
    try:
        problem = _signing_update_problem(reader, issued_revisions)
    except PARSE_ERRORS as exc:
        problem = f"the update cannot be analysed: {failure_message(exc)}"
    if problem:
        _refuse(
            "wrong_document",
            "The signature's update changes the contract, not only the signature field.",
            check=problem,
        )


def _signing_update_problem(reader: PdfFileReader, revision: int) -> str | None:
    """What revision ``revision`` changes beyond adding a signature, or None.

    pyHanko's difference analysis assumes the base revision already has a form
    (/AcroForm), which the issued contract has not; so the rule is ours, and strict: the
    update may add objects, but of the objects that existed it may only rewrite the
    catalog (form, metadata and extension entries), the document information and XMP
    metadata (never displayed), and pages, adding signature widgets to their /Annots.
    """
    xrefs = reader.xrefs
    if xrefs.refs_freed_in_revision(revision):
        return "objects of the issued document are deleted"
    old = reader.get_historical_resolver(revision - 1)
    new = reader.get_historical_resolver(revision)
    old_trailer, new_trailer = old.trailer_view, new.trailer_view
    for key in ("/Root", "/Encrypt"):
        if _raw(old_trailer, key) != _raw(new_trailer, key):
            return f"the trailer's {key} is replaced"
    root_ref = old_trailer.raw_get("/Root").reference
    not_shown = {
        obj.reference
        for obj in (_raw(old_trailer, "/Info"), _raw(old.root, "/Metadata"))
        if isinstance(obj, generic.IndirectObject)
    }
    for ref in xrefs.explicit_refs_in_revision(revision):
        if xrefs.get_historical_ref(ref, revision - 1) is None or ref in not_shown:
            continue  # a new object, or one no viewer displays
        before, after = old.get_object(ref), new.get_object(ref)
        if ref == root_ref:
            problem = _dict_change(before, after, _CATALOG_KEYS_SIGNING_MAY_SET)
        elif isinstance(before, generic.DictionaryObject) and before.get("/Type") == "/Page":
            problem = _dict_change(before, after, frozenset({"/Annots"})) or _annots_change(
                before, after
            )
        else:
            problem = "it rewrites content of the issued document"
        if problem:
            return f"object {ref.idnum}: {problem}"
    return _acroform_problem(new.root)


def _resolved(obj: Any) -> Any:
    if isinstance(obj, generic.IndirectObject):
        return obj.get_object()  # type: ignore[no-untyped-call]
    return obj


def _raw(dictionary: generic.DictionaryObject, key: str) -> object:
    """The entry as stored (an indirect reference stays one), or None."""
    return dictionary.raw_get(key) if key in dictionary else None


def _dict_change(before: object, after: object, may_change: frozenset[str]) -> str | None:
    if not isinstance(after, generic.DictionaryObject):
        return "a dictionary is replaced"
    assert isinstance(before, generic.DictionaryObject)
    for key in (set(before) | set(after)) - may_change:
        if _raw(before, key) != _raw(after, key):
            return f"{key} is changed"
    return None


def _annots_change(before: generic.DictionaryObject, after: generic.DictionaryObject) -> str | None:
    """Annotations may only be added, and only signature widgets."""
    old = list(_resolved(before.get("/Annots", ())))
    new = list(_resolved(after.get("/Annots", ())))
    if new[: len(old)] != old:
        return "existing annotations are changed"
    for annot in new[len(old) :]:
        if not _is_signature_widget(annot):
            return "an annotation other than a signature widget is added"
        if not _invisible(annot):
            # a visible widget's appearance is drawn over the page: it could show other
            # terms than the issued contract, so only invisible signatures are accepted
            return "a visible signature widget is added (its appearance covers the page)"
    return None


def _is_signature_widget(annot: object) -> bool:
    annot = _resolved(annot)
    if not isinstance(annot, generic.DictionaryObject) or annot.get("/Subtype") != "/Widget":
        return False
    field = annot if "/FT" in annot else _resolved(annot.get("/Parent"))
    return isinstance(field, generic.DictionaryObject) and field.get("/FT") == "/Sig"


#: Annotation flags Hidden (bit 2) and NoView (bit 6), ISO 32000-1 §12.5.3.
_NOT_SHOWN = 2 | 32


def _invisible(annot: object) -> bool:
    """A widget with a zero-area /Rect, or flagged hidden, is never drawn."""
    annot = _resolved(annot)
    if not isinstance(annot, generic.DictionaryObject):
        return False
    try:
        flags = int(_resolved(annot.get("/F", 0)))
        x1, y1, x2, y2 = (float(_resolved(v)) for v in _resolved(annot.get("/Rect", ())))
    except (TypeError, ValueError):
        return False
    return bool(flags & _NOT_SHOWN) or x1 == x2 or y1 == y2


def _acroform_problem(root: generic.DictionaryObject) -> str | None:
    """The form may hold signature fields only (no XFA, no fields shown as text)."""
    form = _resolved(root.get("/AcroForm"))
    if form is None:
        return None
    if not isinstance(form, generic.DictionaryObject):
        return "/AcroForm is not a dictionary"
    if set(form) - _ACROFORM_KEYS:
        return f"/AcroForm has {sorted(set(form) - _ACROFORM_KEYS)}"
    for entry in _resolved(form.get("/Fields", ())):
        field = _resolved(entry)
        if not isinstance(field, generic.DictionaryObject) or field.get("/FT") != "/Sig":
            return "/AcroForm has a field that is not a signature field"
    return None


__all__ = ["PARSE_ERRORS", "check_coverage", "check_signed_revision", "failure_message"]
