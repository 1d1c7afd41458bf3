"""The field and file name of a ``multipart/form-data`` part (RFC 7578 §4.2), read once.

Why not just ``BodyPartReader.name`` and ``.filename``: each parses ``Content-Disposition``
with aiohttp's ``parse_content_disposition``, which rebuilds an escaped 128-character class
on every call; under the delivery benchmark those parses were ~9 % of the server's time
(issue 4). The header a client library writes for an ordinary name —
``form-data; name="file"; filename="doc.pdf"`` — is read here with one regular expression;
every other form (escapes, RFC 5987 ``filename*``, RFC 2231 continuations, other casing
or spacing, semicolons or leading slashes in a value, an empty value) goes to aiohttp's
parser, so the answer is always the one aiohttp gives. ``tests/unit/test_disposition.py``
compares the two over a corpus of well-formed and hostile headers.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp.multipart import content_disposition_filename, parse_content_disposition

# A value that aiohttp's parser returns unchanged: quoted, non-empty, no backslash (no
# escapes), no ";" (aiohttp splits on it before it looks at quotes), and not starting with
# "/" (aiohttp strips leading "/" and "\" from quoted values).
_VALUE = r'"([^"\\;/][^"\\;]*)"'
_SIMPLE = re.compile(rf"form-data; name={_VALUE}(?:; filename={_VALUE})?\Z")


def part_names(header: str | None) -> tuple[str | None, str | None]:
    """(field name, file name) of a part's ``Content-Disposition``, as aiohttp reads them."""
    if header is not None and (simple := _SIMPLE.match(header)) is not None:
        return simple.group(1), simple.group(2)
    _, params = parse_content_disposition(header)
    return content_disposition_filename(params, "name"), content_disposition_filename(
        params, "filename"
    )


def attachment(filename: str) -> str:
    """A ``Content-Disposition: attachment`` for ``filename`` that is always a valid
    header (RFC 6266 §4.3): an ASCII fallback without quotes, backslashes or controls,
    and the exact name in ``filename*`` (RFC 8187). A name with CR/LF in a plain quoted
    value made aiohttp refuse the header — after the handover was already sealed."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    exact = quote(filename.encode("utf-8", "replace"), safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}"


__all__ = ["attachment", "part_names"]
