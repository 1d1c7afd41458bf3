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
    ``not_qualified``, ``malformed``.
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
