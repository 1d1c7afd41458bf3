"""R6.4: the service's validation tool — upload a signed document, a piece of evidence or
a timestamp, get a :class:`~server.validate.report.ValidationReport`.

``validate(data, content=None, anchors=())`` detects the format (:mod:`.detect`) and runs
the validator of :mod:`.xades`, :mod:`.cades`, :mod:`.pades` or :mod:`.tst`; each module
also has its own ``validate`` with the same signature. ``vep verify`` is :mod:`.cli`;
``POST /api/v1/validate`` is :mod:`server.http.api.validate`.
"""

from __future__ import annotations

from .detect import detect, validate
from .report import Issue, SignatureReport, TimestampReport, Trust, ValidationReport

__all__ = [
    "Issue",
    "SignatureReport",
    "TimestampReport",
    "Trust",
    "ValidationReport",
    "detect",
    "validate",
]
