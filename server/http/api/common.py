"""Request parsing shared by the JSON handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ...errors import BadRequest


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
