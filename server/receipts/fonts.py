"""Compact copies of the receipt fonts, made once, so that a receipt renders fast (R6.3).

fpdf2 parses the whole TrueType file for every document: DejaVu Sans, its bold and its
mono face cost about 165 ms together, far more than the rest of a receipt. A copy of each
cut down to the scripts a receipt can show (Latin, Greek, Cyrillic, punctuation; the mono
face, which sets identifiers and digests, to Latin-1) parses in a few milliseconds. The
copies are written once into a cache directory named after the source fonts and the
ranges, atomically, so that several worker processes may race to make them. Characters
outside the copies are transliterated by the renderer, never lost silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

# fontTools comes with fpdf2 and has no type information.
from fontTools import subset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

#: Bump when the subsetting options change: the cache directory is named after it (and
#: after the ranges and the source fonts).
VERSION = "1"
TEXT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x024F),  # Latin-1 Supplement, Latin Extended-A and -B (č š ž ć đ)
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x04FF),  # Cyrillic
    (0x2000, 0x206F),  # General Punctuation (– — „ “ …)
    (0x20A0, 0x20BF),  # Currency symbols (€)
)
MONO_RANGES: tuple[tuple[int, int], ...] = ((0x0020, 0x007E), (0x00A0, 0x00FF))

log = logging.getLogger(__name__)


def siblings(font: Path) -> dict[str, Path]:
    """The faces a receipt uses, named as DejaVu names them: regular, -Bold, Mono."""
    return {
        "regular": font,
        "bold": font.with_name(f"{font.stem}-Bold{font.suffix}"),
        "mono": font.with_name(f"{font.stem}Mono{font.suffix}"),
    }


def _codepoints(ranges: tuple[tuple[int, int], ...]) -> list[int]:
    return [code for first, last in ranges for code in range(first, last + 1)]


def _subset(source: Path, target: Path, ranges: tuple[tuple[int, int], ...]) -> None:
    options = subset.Options()
    options.notdef_outline = True
    options.recommended_glyphs = True
    options.hinting = False
    options.layout_features = []
    options.name_IDs = ["*"]
    options.drop_tables += ["FFTM"]
    font = TTFont(source, recalcTimestamp=False)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_codepoints(ranges))
    subsetter.subset(font)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            font.save(out)
        Path(temporary).replace(target)  # atomic: a racing process sees old or new
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(temporary).unlink()


def compact_fonts(font: Path, cache: Path) -> Path:
    """A compact copy of ``font`` (with its bold and mono siblings) in ``cache``; the
    returned path is what :func:`~server.receipts.render.render_receipt` takes.

    ``font`` itself comes back when it is missing (the renderer then uses core fonts) or
    when the copies cannot be written (slower, still correct).
    """
    faces = {name: path for name, path in siblings(font).items() if path.is_file()}
    if "regular" not in faces:
        return font
    digest = hashlib.sha256(f"{VERSION} {TEXT_RANGES} {MONO_RANGES}".encode())
    for name, path in sorted(faces.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    directory = cache / digest.hexdigest()[:20]
    compact = siblings(directory / font.name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, source in faces.items():
            if not compact[name].is_file():
                ranges = MONO_RANGES if name == "mono" else TEXT_RANGES
                _subset(source, compact[name], ranges)
    except (OSError, subset.Subsetter.SubsettingError) as exc:
        log.warning("receipt fonts: using %s uncut (%s: %s)", font, type(exc).__name__, exc)
        return font
    return compact["regular"]


__all__ = ["MONO_RANGES", "TEXT_RANGES", "compact_fonts", "siblings"]
