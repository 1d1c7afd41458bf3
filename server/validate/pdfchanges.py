"""What a PDF's later revisions changed after a signature (ETSI EN 319 142-1 §5.4,
ISO 32000-1 §7.5.6 incremental updates).

pyHanko's difference analysis classifies each later revision: validation data (DSS) and
document timestamps are expected; form filling and annotations are reported as warnings;
anything else is reported too, and then the pages are compared — their number and their
content streams — between the signed revision and the last one. A change there makes the
signature not intact (``document_modified_after_signing``): the document a reader sees is
not the one that was signed (DSS reports such a file as ``FORMAT_FAILURE``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from .cmscheck import PARSE_ERRORS as _CMS_ERRORS
from .report import Issue

PARSE_ERRORS = (PdfError, *_CMS_ERRORS)
_QUIET_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)
_MAX_PAGES = 10_000


def resolve(value: Any) -> Any:
    if isinstance(value, generic.IndirectObject):
        return value.get_object()  # type: ignore[no-untyped-call]
    return value


def _pages(reader: PdfFileReader, revision: int) -> list[bytes]:
    """A digest of each page's content streams, in page order, as of ``revision``."""
    resolver = reader.get_historical_resolver(revision)
    pages: list[bytes] = []
    stack: list[Any] = [resolver.root.get("/Pages")]
    seen: set[object] = set()  # a page tree with a cycle must not loop forever
    while stack and len(pages) < _MAX_PAGES and len(seen) < 4 * _MAX_PAGES:
        raw = stack.pop()
        key = (raw.idnum, raw.generation) if isinstance(raw, generic.IndirectObject) else id(raw)
        node = resolve(raw)
        if not isinstance(node, generic.DictionaryObject) or key in seen:
            continue
        seen.add(key)
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            stack.extend(reversed(list(node.get("/Kids", []))))
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
    diff = sig.diff_result
    level = getattr(diff, "modification_level", None)
    if level in _QUIET_LEVELS:
        return [], []
    warnings = [
        Issue(
            "changes_after_signing",
            "The document was updated after this signature: "
            + (f"{level.name.lower().replace('_', ' ')}." if level is not None else f"{diff}"),
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
