"""A request's JSON object, parsed once the same way for every endpoint (house rule: bad
input gets a clear error and changes nothing).

``json.loads`` accepts what the rest of the service cannot keep: ``\\u0000`` (PostgreSQL
text refuses NUL) and unpaired surrogates such as ``\\ud800`` (no UTF-8 encoding exists,
so hashing a password or a subject fails). Found late, they became a 500 — after an admin
password try was counted, or after a whole upload was stored and sealed. They are refused
here, before anything happens, as are numbers too long to convert (``ValueError``) and
nesting too deep to parse (``RecursionError``).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadRequest


def storable(text: str) -> bool:
    """Whether ``text`` can be kept: no NUL, no unpaired surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(value: Any) -> bool:
    """Whether every string in ``value`` (keys too) is text that can be stored."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def parse_object(raw: str | bytes, what: str) -> dict[str, Any]:
    """The JSON object in ``raw``, or 400 ``malformed_json`` / ``invalid_text`` naming
    ``what`` (the body, the metadata part)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise BadRequest(f"The {what} is not valid JSON.", "malformed_json") from None
    if not isinstance(body, dict):
        raise BadRequest(f"The {what} must be a JSON object.", "malformed_json")
    if not clean_text(body):
        raise BadRequest(
            f"The {what} has text with a NUL character or an unpaired surrogate.",
            "invalid_text",
        )
    return body
