"""Text as PostgreSQL keeps it."""

from __future__ import annotations

import math
from typing import Any


def recordable(value: Any) -> Any:
    """``value`` with every string (keys too) made storable: a NUL becomes the visible
    ``\\x00`` and an unpaired surrogate its ``\\udxxx`` escape.

    PostgreSQL's text and jsonb refuse both, and what the service records about a document
    is often what a stranger wrote: an audit record's quotes, a signer's name that
    asn1crypto renders as it is when pyca/cryptography cannot read the certificate. A
    write that failed on it failed the request (500) and recorded nothing, on every try.
    A float JSON or jsonb cannot keep as written becomes its ``repr``."""
    if isinstance(value, str):
        if "\x00" in value or not value.isascii():
            value = value.replace("\x00", "\\x00")
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {recordable(k): recordable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [recordable(v) for v in value]
    if isinstance(value, float) and (not math.isfinite(value) or "e" in repr(value)):
        # JSON has no NaN or Infinity, and jsonb gives 1e+16 back as 10000000000000000:
        # an audit record holding either would not hash the same when verified (review)
        return repr(value)
    return value
