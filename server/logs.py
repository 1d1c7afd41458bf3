"""Structured JSON logs on stderr (R9.5): one object per line, no content, no secrets.

Only fields passed explicitly through ``extra=`` reach the output, and callers pass ids,
routes, statuses and timings — never bodies, cookies, certificates or keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


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
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
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
