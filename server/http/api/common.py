"""Request parsing shared by the JSON handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ...errors import BadRequest, PayloadTooLarge


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
        body = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON.", "malformed_json") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", "malformed_json")
    return body
