"""The one error tree of the domain. Errors carry data; ``http/middlewares.py`` is the only
place that turns them into problem+json (RFC 9457) or an HTML page.

``reason`` is a stable machine code that API clients may switch on; ``detail`` is for people.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    reason: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, **data: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.data = data

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 members, plus ``reason`` and any data of the error."""
        body: dict[str, Any] = {
            "type": f"https://vep.si/problems/{self.reason}",
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
        }
        body.update(self.data)
        return body


class AuthenticationRequired(DomainError):
    """No client certificate was presented (R1.1)."""

    status = 401
    reason = "certificate_required"
    title = "Client certificate required"


class SessionEnded(DomainError):
    """The browser session's cookie no longer opens a session (R1.6: logout, idle, mismatch)."""

    status = 401
    title = "Session ended"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class CertificateRefused(DomainError):
    """A presented certificate failed a check of R1.1/R1.2; ``reason`` names which one.

    Reasons: ``untrusted``, ``expired``, ``revoked``, ``revocation_unknown``, ``key_usage``,
    ``not_qualified``, ``malformed``, ``serial_reused`` (a certificate with the same
    issuer and serial number but other content is on record).
    """

    status = 403
    title = "Certificate refused"

    def __init__(self, reason: str, detail: str, **data: Any) -> None:
        super().__init__(detail, **data)
        self.reason = reason


class RevokedError(CertificateRefused):
    """Carries when and why the certificate was revoked."""

    def __init__(self, detail: str, revoked_at: str | None, revocation_reason: str | None) -> None:
        super().__init__(
            "revoked", detail, revoked_at=revoked_at, revocation_reason=revocation_reason
        )
        self.revoked_at = revoked_at
        self.revocation_reason = revocation_reason


class Forbidden(DomainError):
    status = 403
    reason = "forbidden"
    title = "Forbidden"


class CsrfRejected(Forbidden):
    """A state-changing request without a valid CSRF token or from another site (R1.6)."""

    reason = "csrf"
    title = "Cross-site request refused"


class NotFound(DomainError):
    status = 404
    reason = "not_found"
    title = "Not found"


class InvalidFields(DomainError):
    """Input failed validation; ``errors`` lists one ``{field, reason}`` per problem."""

    status = 422
    reason = "invalid_fields"
    title = "Invalid fields"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        fields = ", ".join(sorted({e["field"] for e in errors}))
        super().__init__(f"Some fields are not valid: {fields}.", errors=errors)
        self.errors = errors


class BadRequest(DomainError):
    """A request that cannot be understood (malformed JSON, missing query)."""

    def __init__(self, detail: str, reason: str = "bad_request", **data: Any) -> None:
        super().__init__(detail, **data)
        self.reason = reason


class Conflict(DomainError):
    """The request is valid but the state does not allow it (R3.3, R2.5)."""

    status = 409
    title = "Conflict"

    def __init__(self, detail: str, reason: str, **data: Any) -> None:
        super().__init__(detail, **data)
        self.reason = reason


class Refused(Forbidden):
    """Forbidden with a specific, stable reason (not_member, not_custodian, ...)."""

    def __init__(self, detail: str, reason: str, **data: Any) -> None:
        super().__init__(detail, **data)
        self.reason = reason


class AdminPasswordLocked(DomainError):
    """R1.5: too many wrong admin passwords; ``retry_after`` seconds until the next try."""

    status = 423
    reason = "admin_password_locked"
    title = "Admin password locked"

    def __init__(self, locked_until: str, retry_after: int) -> None:
        super().__init__(
            "Too many wrong admin passwords; try again later.",
            locked_until=locked_until,
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class RateLimited(DomainError):
    """R4.3: the per-person rate limit is used up; ``retry_after`` seconds."""

    status = 429
    reason = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class SignatureRefused(DomainError):
    """A signed document (R2.1: the subscription contract) failed a check of its signature.

    Reasons: ``signature_malformed`` (not a PDF signature or CMS, too big),
    ``no_signature``, ``multiple_signatures``, ``signature_invalid`` (not intact, the
    cryptographic check fails, a disallowed algorithm), ``wrong_document`` (not over the
    exact bytes the server issued). A problem of the signer's certificate is a
    :class:`CertificateRefused` instead.
    """

    status = 422
    title = "Signature refused"

    def __init__(self, reason: str, detail: str, **data: Any) -> None:
        super().__init__(detail, **data)
        self.reason = reason


class PayloadTooLarge(DomainError):
    """The body is larger than this endpoint accepts (R5.7); nothing was stored."""

    status = 413
    reason = "too_large"
    title = "Payload too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The body is larger than {limit} bytes.", limit=limit)


class UploadTimedOut(DomainError):
    """The submission's parts did not arrive in time (R5.7); nothing was kept."""

    status = 408
    reason = "upload_timeout"
    title = "Upload too slow"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The delivery's parts must arrive within {seconds:.0f} seconds.", limit=seconds
        )


class ContentUnavailable(DomainError):
    """Stored content does not open as it was written (damaged or missing file, a key
    that does not unwrap): nothing is sent and nothing recorded; the operator restores it
    from a backup (R5.5)."""

    status = 503
    reason = "content_unavailable"
    title = "Content unavailable"


class OutcomeUncertain(DomainError):
    """A write was sent but its answer was lost (a connection cut mid-commit): it may or
    may not have committed. What it needs (the delivery's content) is kept; the client
    should look the resource up before it repeats the request."""

    status = 503
    reason = "outcome_unknown"
    title = "Outcome unknown"
