"""What decides how a PDF page looks, digested by value (ISO 32000-1 §7.7.3, §8, §12.5):
the digest of one revision's page compares equal to another's exactly when a reader would
draw the same thing from the same objects, whatever their object numbers
(:mod:`.pdfchanges`, :mod:`.pdfcatalog`)."""

from __future__ import annotations

import hashlib
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError

from .cmscheck import PARSE_ERRORS as _CMS_ERRORS

# AssertionError: pyHanko asserts what it reads (a catalog that is not a dictionary)
PARSE_ERRORS = (PdfError, AssertionError, *_CMS_ERRORS)
_MAX_OBJECTS = 200_000
#: Page attributes a /Pages node passes on to its pages (ISO 32000-1 Table 30).
INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
#: What decides how a page looks.
_SHOWN = frozenset({"/Contents", "/Annots", "/Group", *INHERITED})
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


def _stream_bytes(stream: generic.StreamObject) -> bytes:
    """Decoded where pyHanko can (a stream compressed anew compares equal), else as stored
    (an image's ``/DCTDecode`` is not decoded)."""
    try:
        return bytes(stream.data)
    except (NotImplementedError, *PARSE_ERRORS):
        return bytes(stream.encoded_data)


class Looks:
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

    def value(self, value: Any) -> bytes:
        """Any object's digest by value (a catalog entry, say)."""
        return self._digest(value, 0)

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
            # an optional content membership's /P is its visibility policy, not a parent
            # (ISO 32000-1 §8.11.2.2; found in review: /AllOn → /AllOff showed a layer)
            membership = resolve(value.get("/Type")) == "/OCMD"
            for name in sorted(value):
                if name in _NOT_SHOWN and not (membership and name == "/P"):
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


__all__ = ["INHERITED", "PARSE_ERRORS", "Looks", "resolve"]
