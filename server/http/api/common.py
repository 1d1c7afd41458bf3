"""Request parsing shared by the JSON handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...errors import BadRequest, PayloadTooLarge
from ...services.json_body import parse_object


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused as ``too_large`` (413) past ``limit`` bytes without reading on.

    ``StreamReader.read(n)`` returns what has arrived so far, not n bytes: a body that
    comes in several TCP segments (curl sends large bodies after ``100-continue``) must be
    read until EOF.
    """
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object of the body, or a 400 ``malformed_json`` (nothing else happens)."""
    if request.content_type != "application/json":
        raise BadRequest("Send application/json.", "unsupported_media_type")
    try:
        text = await request.text()
    except (UnicodeDecodeError, LookupError):  # bytes not in the charset, or no such charset
        raise BadRequest("The body is not valid JSON.", "malformed_json") from None
    return parse_object(text, "body")


#: What aiohttp's multipart reader raises for a body that is not well-formed multipart: a
#: missing or wrong boundary, a bad part Content-Length (ValueError), a header line too long
#: (LineTooLong and the other HttpProcessingErrors). Left alone, each was a 500.
MALFORMED = (ValueError, HttpProcessingError)


def malformed_multipart() -> BadRequest:
    """The 400 for one of :data:`MALFORMED` (aiohttp's text is not repeated)."""
    return BadRequest("The multipart body is malformed.", "malformed_multipart")
