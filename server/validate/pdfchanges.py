"""What a PDF's later revisions changed after a signature (ETSI EN 319 142-1 §5.4,
ISO 32000-1 §7.5.6 incremental updates).

pyHanko's difference analysis classifies each later revision: validation data (DSS) and
document timestamps are expected; form filling and annotations are reported as warnings
(unless a certification signature's DocMDP forbids them), and then the pages are compared
— their number and their content streams — between the signed revision and the last one.
Two entries of the document catalog decide how every page looks and are compared first:
the layers shown (``/OCProperties``) and whether readers draw form fields from their values
(``/NeedAppearances``).
Anything else, a change no rule explains, and a page that changed make the signature not
intact (``document_modified_after_signing``): the document a reader sees may not be the
one that was signed (DSS reports such a file as ``FORMAT_FAILURE``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from .cmscheck import PARSE_ERRORS as _CMS_ERRORS
from .report import Issue

PARSE_ERRORS = (PdfError, *_CMS_ERRORS)
_QUIET_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)
_MAX_PAGES = 10_000
_MAX_OBJECTS = 200_000
#: Page attributes a /Pages node passes on to its pages (ISO 32000-1 Table 30).
_INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
#: What decides how a page looks.
_SHOWN = frozenset({"/Contents", "/Annots", "/Group", *_INHERITED})
#: Keys that point elsewhere or act, never draw: back-references, link destinations and
#: actions, structure, and an annotation's replies and pop-up.
_NOT_SHOWN = frozenset(
    {
        "/Parent",
        "/P",
        "/Dest",
        "/A",
        "/AA",
        "/PA",
        "/Next",
        "/IRT",
        "/Popup",
        "/StructParent",
        "/StructParents",
    }
)
_MAX_DEPTH = 200
_HIDDEN, _NO_VIEW = 2, 32  # annotation flags (ISO 32000-1 Table 165)


def resolve(value: Any) -> Any:
    if isinstance(value, generic.IndirectObject):
        return value.get_object()  # type: ignore[no-untyped-call]
    return value


def _pages(reader: PdfFileReader, revision: int, deep: bool = False) -> list[bytes]:
    """A digest of each page, in page order, as of ``revision``: its content streams, or,
    ``deep``, everything that decides what it shows (:func:`_shown`)."""
    resolver = reader.get_historical_resolver(revision)
    looks = _Looks() if deep else None
    pages: list[bytes] = []
    # (node, the attributes it inherits: ISO 32000-1 §7.7.3.4)
    stack: list[tuple[Any, dict[str, Any]]] = [(resolver.root.get("/Pages"), {})]
    seen: set[object] = set()  # a page tree with a cycle must not loop forever
    while stack and len(pages) < _MAX_PAGES and len(seen) < 4 * _MAX_PAGES:
        raw, inherited = stack.pop()
        key = (raw.idnum, raw.generation) if isinstance(raw, generic.IndirectObject) else id(raw)
        node = resolve(raw)
        if not isinstance(node, generic.DictionaryObject) or key in seen:
            continue
        seen.add(key)
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            passed = {**inherited, **{k: node[k] for k in _INHERITED if k in node}}
            stack.extend((kid, passed) for kid in reversed(list(node.get("/Kids", []))))
            continue
        if looks is not None:
            pages.append(looks.page({**inherited, **node}))
            continue
        contents = resolve(node.get("/Contents"))
        streams = contents if isinstance(contents, generic.ArrayObject) else [contents]
        hasher = hashlib.sha256()
        for stream in streams:
            stream = resolve(stream)
            if isinstance(stream, generic.StreamObject):
                hasher.update(stream.data)
        pages.append(hasher.digest())
    return pages


def _stream_bytes(stream: generic.StreamObject) -> bytes:
    """Decoded where pyHanko can (a stream compressed anew compares equal), else as stored
    (an image's ``/DCTDecode`` is not decoded)."""
    try:
        return bytes(stream.data)
    except (NotImplementedError, *PARSE_ERRORS):
        return bytes(stream.encoded_data)


class _Looks:
    """Digests of what decides how pages look, by value: the same object rewritten under a
    new number digests the same. One per document revision, so an object shared by many
    pages (a font, a form XObject) is digested once, and one budget bounds the whole walk.

    Left out: back-references and navigation (``/Parent``, an annotation's ``/P``, link
    destinations and actions, replies and pop-ups — found in review, following them walked
    from page to page until Python's recursion limit, a 500). A reference met again on its
    own path is a cycle, digested as such; a null or missing object is a value. A graph too
    large or too deep raises :class:`PdfError`: the caller reports a change it cannot rule
    out."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], bytes] = {}
        self._open: set[tuple[int, int]] = set()
        self._budget = _MAX_OBJECTS

    def layers(self, root: Any) -> bytes:
        """The optional content configuration of a document catalog (a missing one too)."""
        return self._digest(root.raw_get("/OCProperties") if "/OCProperties" in root else None, 0)

    def page(self, page: dict[str, Any]) -> bytes:
        shown = {k: page[k] for k in sorted(page) if k in _SHOWN}
        if "/Annots" in shown:
            shown["/Annots"] = _visible(shown["/Annots"])
        return self._digest(shown, 0)

    def _digest(self, value: Any, depth: int) -> bytes:
        self._budget -= 1
        if self._budget < 0 or depth > _MAX_DEPTH:
            raise PdfError("too many objects to compare")
        if isinstance(value, generic.IndirectObject):
            ref = (value.idnum, value.generation)
            if ref in self._memo:
                return self._memo[ref]
            if ref in self._open:
                return b"cycle"
            self._open.add(ref)
            try:
                target = value.get_object()  # type: ignore[no-untyped-call]
            except (KeyError, *PARSE_ERRORS):
                target = None  # a missing object reads as null (ISO 32000-1 §7.3.10)
            digest = self._digest(target, depth + 1)
            self._open.discard(ref)
            self._memo[ref] = digest
            return digest
        hasher = hashlib.sha256()
        if isinstance(value, generic.StreamObject):
            hasher.update(b"stream" + hashlib.sha256(_stream_bytes(value)).digest())
            value = {k: value.raw_get(k) for k in value}
        if isinstance(value, generic.DictionaryObject | dict):
            hasher.update(b"<<")
            for name in sorted(value):
                if name in _NOT_SHOWN:
                    continue
                raw = (
                    value.raw_get(name)
                    if isinstance(value, generic.DictionaryObject)
                    else value[name]
                )
                hasher.update(str(name).encode() + b" " + self._digest(raw, depth + 1))
            hasher.update(b">>")
        elif isinstance(value, generic.ArrayObject | list):
            hasher.update(b"[")
            for item in value:
                hasher.update(self._digest(item, depth + 1))
            hasher.update(b"]")
        else:
            hasher.update(repr(value).encode("utf-8", "backslashreplace"))
        return hasher.digest()


def _visible(annots: Any) -> list[Any]:
    """The annotations a reader shows: not /Hidden or /NoView (ISO 32000-1 §12.5.3), with
    an area. A document timestamp adds an invisible signature widget (``/Rect [0 0 0 0]``):
    that changes nothing shown. Of each, its looks, not the value of its field (``/V``)."""
    kept: list[Any] = []
    for raw in resolve(annots) if isinstance(resolve(annots), generic.ArrayObject) else []:
        annot = resolve(raw)
        if not isinstance(annot, generic.DictionaryObject):
            continue
        flags, rect = resolve(annot.get("/F", 0)), resolve(annot.get("/Rect"))
        hidden = isinstance(flags, int) and flags & (_HIDDEN | _NO_VIEW)
        try:
            x1, y1, x2, y2 = (float(resolve(v)) for v in rect)
            empty = x1 == x2 or y1 == y2
        except (TypeError, ValueError):
            empty = False  # a malformed /Rect is compared as it is
        if not hidden and not empty:
            kept.append({k: annot[k] for k in annot if k != "/V"})
    return kept


def _catalog_change(reader: PdfFileReader, signed: int) -> str | None:
    """What the document catalog changed after ``signed`` about how every page looks, or
    None. Found in review: neither is in a page, so the page comparison missed them, and
    pyHanko let the second pass without a word (the "shadow" attacks on PDF signatures).

    - ``/OCProperties`` (ISO 32000-1 §8.11.4): which optional content — layers — is
      shown. Switching one on shows content that was signed hidden. Any change counts.
    - ``/AcroForm /NeedAppearances`` (§12.7.2) turned on: viewers then draw each form
      field from its value, not from the appearance that was signed. Only turning it on
      counts: a later editor that drew the appearances and dropped the flag (as a second
      signer's software may) shows the appearances the fields carry."""
    before, after = (
        reader.get_historical_resolver(revision).root
        for revision in (signed, reader.xrefs.total_revisions - 1)
    )
    if _Looks().layers(before) != _Looks().layers(after):
        return (
            "The layers (optional content) a reader shows were changed after this "
            "signature: what is shown may not be what was signed."
        )
    if _redrawn(after) and not _redrawn(before):
        return (
            "After this signature the document began to ask readers to draw its form "
            "fields from their values (/NeedAppearances), not as they were signed: what is "
            "shown may not be what was signed."
        )
    return None


def _redrawn(root: Any) -> bool:
    form = resolve(root.get("/AcroForm"))
    if not isinstance(form, generic.DictionaryObject):
        return False
    flag = resolve(form.get("/NeedAppearances"))
    return isinstance(flag, generic.BooleanObject) and flag.value is True


def _unexplained(
    sig: EmbeddedPdfSignature, reader: PdfFileReader, permitted: MDPPerm | None
) -> tuple[list[Issue], list[Issue]]:
    """A change no rule explains (pyHanko: suspicious, or OTHER). Found in review: fonts,
    graphics states, page boxes or annotations change what a page shows without touching
    its content stream, so here every page is compared by all that decides its looks, by
    value. Real signed files carry such changes harmlessly (a plugtest's later revision
    rewrites a page's resources under a new object number): DSS compares what is shown,
    and so does this. A certification signature (DocMDP) is broken by any such change."""
    if permitted is not None:
        # a certification permits form filling or comments at most (ISO 32000-1 Table 254),
        # never a change no rule explains (found in review: only P=1 refused it)
        message = (
            f"The certification signature permits {permitted.name.lower().replace('_', ' ')} "
            f"only (DocMDP P={permitted.value}); the document was changed in ways no rule "
            "explains."
        )
        return [Issue("document_modified_after_signing", message)], []
    try:
        same = _pages(reader, sig.signed_revision, deep=True) == _pages(
            reader, reader.xrefs.total_revisions - 1, deep=True
        )
    except PARSE_ERRORS as exc:
        return [Issue("document_modified_after_signing", f"Pages cannot be compared: {exc}")], []
    if not same:
        message = (
            "The document was changed after this signature in ways that neither validation "
            "data, form filling nor annotations explain, and its pages no longer show what "
            "was signed (content, resources, boxes or annotations)."
        )
        return [Issue("document_modified_after_signing", message)], []
    notice = (
        "The document was updated after this signature in ways no rule explains; its pages "
        "still show what was signed."
    )
    return [], [Issue("changes_after_signing", notice)]


def modifications(
    sig: EmbeddedPdfSignature, reader: PdfFileReader
) -> tuple[list[Issue], list[Issue]]:
    """Errors and warnings about what later revisions changed."""
    try:
        sig.compute_integrity_info()  # type: ignore[no-untyped-call]
    except PARSE_ERRORS as exc:
        return [Issue("byte_range_invalid", f"The signed revision cannot be analysed: {exc}")], []
    if sig.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return [], []
    if sig.coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        return [Issue("byte_range_invalid", "The signature does not cover its whole revision.")], []
    try:
        catalog = _catalog_change(reader, sig.signed_revision)
    except PARSE_ERRORS as exc:
        return [
            Issue("document_modified_after_signing", f"The catalog cannot be compared: {exc}")
        ], []
    if catalog is not None:
        return [Issue("document_modified_after_signing", catalog)], []
    diff = sig.diff_result
    level = getattr(diff, "modification_level", None)
    if level in _QUIET_LEVELS:
        return [], []
    permitted = sig.docmdp_level
    if level is None or level == ModificationLevel.OTHER:
        return _unexplained(sig, reader, permitted)

    if permitted is not None and level.value > permitted.value:
        # a certification signature (ISO 32000-1 §12.8.2.2, /DocMDP /P) that forbids these
        message = (
            f"The certification signature permits {permitted.name.lower().replace('_', ' ')} "
            f"only (DocMDP P={permitted.value}); the document was changed by "
            f"{level.name.lower().replace('_', ' ')} after it."
        )
        return [Issue("document_modified_after_signing", message)], []
    warnings = [
        Issue(
            "changes_after_signing",
            f"The document was updated after this signature: "
            f"{level.name.lower().replace('_', ' ')}.",
        )
    ]
    try:
        before = _pages(reader, sig.signed_revision)
        after = _pages(reader, reader.xrefs.total_revisions - 1)
    except PARSE_ERRORS as exc:
        return [Issue("document_modified_after_signing", f"Pages cannot be compared: {exc}")], []
    if before != after:
        change = (
            f"{len(before)} page(s) when signed, {len(after)} now"
            if len(before) != len(after)
            else "the content of a page changed"
        )
        message = (
            f"The pages were changed after signing ({change}): what is shown is not what "
            "was signed."
        )
        return [Issue("document_modified_after_signing", message)], warnings
    return [], warnings


__all__ = ["PARSE_ERRORS", "modifications", "resolve"]
