"""What a PDF's later revisions changed after a signature (ETSI EN 319 142-1 §5.4,
ISO 32000-1 §7.5.6 incremental updates).

pyHanko's difference analysis classifies each later revision: validation data (DSS) and
document timestamps are expected; form filling and annotations are reported as warnings
(unless a certification signature's DocMDP forbids them), and then the pages are compared
— their number and their content streams — between the signed revision and the last one.
What the catalog decides for every page (layers, form fields drawn from their values) is
compared first (:mod:`.pdfcatalog`). Anything else, a change no rule explains, and a page
that changed make the signature not intact (``document_modified_after_signing``): the
document a reader sees may not be the one that was signed (DSS reports such a file as
``FORMAT_FAILURE``).
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from .pdfcatalog import catalog_change
from .pdflooks import INHERITED, PARSE_ERRORS, Looks, resolve
from .report import Issue

_QUIET_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)
_MAX_PAGES = 10_000


def _words(value: enum.Enum) -> str:
    """An enum member as words in a message (``FORM_FILLING`` → "form filling")."""
    return value.name.lower().replace("_", " ")


def _pages(reader: PdfFileReader, revision: int, deep: bool = False) -> list[bytes]:
    """A digest of each page, in page order, as of ``revision``: its content streams, or,
    ``deep``, everything that decides what it shows (:meth:`.Looks.page`)."""
    resolver = reader.get_historical_resolver(revision)
    looks = Looks() if deep else None
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
            passed = {**inherited, **{k: node[k] for k in INHERITED if k in node}}
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
            f"The certification signature permits {_words(permitted)} "
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
        catalog = catalog_change(reader, sig.signed_revision)
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
            f"The certification signature permits {_words(permitted)} "
            f"only (DocMDP P={permitted.value}); the document was changed by "
            f"{_words(level)} after it."
        )
        return [Issue("document_modified_after_signing", message)], []
    warnings = [
        Issue(
            "changes_after_signing",
            f"The document was updated after this signature: {_words(level)}.",
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


__all__ = ["modifications"]
