"""Why evidence could not be issued: each refusal names the component that failed."""

from __future__ import annotations


class EvidenceError(RuntimeError):
    """Evidence could not be built, sealed or time-stamped; nothing was issued."""


class SignerError(EvidenceError):
    """The seal key cannot be loaded or used (missing file, token, key, wrong certificate)."""


class TimestampError(EvidenceError):
    """A time-stamp could not be obtained, or a token is malformed or does not verify."""


class NotQualified(EvidenceError):
    """R6.6: the service is configured as qualified but ``component`` is not (fail closed).

    ``component`` is one of ``seal_certificate``, ``seal_key`` or ``tsa``; ``detail`` says
    what is missing, for the operator (no secrets).
    """

    def __init__(self, component: str, detail: str) -> None:
        super().__init__(f"qualified mode refused: {component}: {detail}")
        self.component = component
        self.detail = detail


__all__ = ["EvidenceError", "NotQualified", "SignerError", "TimestampError"]
