"""Structured JSON logs on stderr (R9.5): one object per line, no content, no secrets.

Only fields passed explicitly through ``extra=`` reach the output, and callers pass ids,
routes, statuses and timings — never bodies, cookies, certificates or keys. An exception
is written as its classes and frames, never its messages (:func:`exception_outline`): a
message is where data hides — aiohttp's parse error quotes the raw header line (a session
cookie with it), asyncpg's error the failing row and key values.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def exception_outline(exc: BaseException) -> str:
    """A traceback without messages: each exception of the chain (its causes and contexts,
    innermost last) as its frames and its class name only."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts = []
    for item in reversed(chain):
        frames = "".join(traceback.format_tb(item.__traceback__))
        kind = type(item)
        parts.append(
            f"Traceback (most recent call last):\n{frames}{kind.__module__}.{kind.__qualname__}"
        )
    return "\n\nwhich led to:\n\n".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc"] = exception_outline(record.exc_info[1])
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pyHanko narrates every OCSP/CRL fetch at INFO (our own records say what was checked),
    # apscheduler every firing (the outbox fires every 2 s; the runner logs what a run did)
    for noisy in ("pyhanko", "pyhanko_certvalidator", "fontTools", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
