"""Request id, error mapping, plain URLs, wind-down, authentication, CSRF — in that order;
and the security headers of every answer (:func:`security_headers`, a signal).

The error middleware is the one place where a :class:`~server.errors.DomainError` becomes
``application/problem+json`` (RFC 9457, with a stable ``reason``) or, for a browser, a
readable HTML page. Logs carry the request id, method, route and status — never content,
cookies, headers or certificates (R9.5).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from ..errors import AuthenticationRequired, BadRequest, CsrfRejected, DomainError
from .client_auth import client_certificate, peer_address
from .context import PRINCIPAL, REQUEST_ID, SESSION_COOKIE, Principal, services

log = logging.getLogger("vep.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Routes that answer without a certificate (monitoring, static assets, and the payment
#: provider's webhook, which is authenticated by its HMAC signature instead, R8.2).
PUBLIC_PREFIXES = (
    "/healthz",
    "/readyz",
    "/static/",
    "/reference-list",
    "/api/v1/payments/webhook",
)
#: What still answers after a wind-down's day 45 (R8.5): monitoring only.
CEASED_PREFIXES = ("/healthz", "/readyz", "/static/")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Route names of the GETs that record something: a recipient's first download seals
#: ContentHandover (R6.1), and a vročilnica is issued for signing (R5.3). A cross-site
#: ``<img src>`` must not make evidence that the recipient opened a delivery.
PART_DOWNLOAD = "delivery-part"
RECEIPT_ISSUE = "delivery-receipt"
RECORDING_READS = frozenset({PART_DOWNLOAD, RECEIPT_ISSUE})
#: Route names of the pages that start a session when the request has none (the login).
#: R1.3 "on session start": their certificate check is made afresh (OCSP/CRL now), not
#: taken from the node's cache, which may be up to the revalidation interval old — a card
#: revoked since could otherwise open a session, whose first revalidation would then come
#: up to two intervals after the check it rests on.
SESSION_API = "session"
HOME_PAGE = "home"
SESSION_STARTS = frozenset({SESSION_API, HOME_PAGE})
#: ``Sec-Fetch-Site`` values of a request another site's page made the browser send.
ELSEWHERE = frozenset({"cross-site", "same-site"})
PROBLEM_JSON = "application/problem+json"


def wants_html(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return False
    accept = request.headers.get("Accept", "")
    return "text/html" in accept


def _problem_response(request: web.Request, error: DomainError) -> web.Response:
    body = error.problem()
    body["instance"] = request.get(REQUEST_ID)
    if wants_html(request):
        response = aiohttp_jinja2.render_template(
            "error.html", request, {"problem": body}, status=error.status
        )
    else:
        response = web.json_response(body, status=error.status, content_type=PROBLEM_JSON)
    retry_after = error.data.get("retry_after")
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    if error.status == 401 and error.reason.startswith("session_"):
        response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response


def _http_problem(exc: web.HTTPException) -> DomainError:
    reason = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        exc.status, "http_error"
    )
    error = DomainError(exc.reason or "Error")
    error.status, error.reason, error.title = exc.status, reason, exc.reason or "Error"
    return error


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = secrets.token_hex(8)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        log.info(
            "request",
            extra={
                "request_id": request[REQUEST_ID],
                "method": request.method,
                "route": request.match_info.route.resource.canonical
                if request.match_info.route.resource
                else None,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return _problem_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _problem_response(request, _http_problem(exc))
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID)})
        error = DomainError("An internal error occurred; it is logged with this request's id.")
        error.status, error.reason, error.title = 500, "internal_error", "Internal error"
        return _problem_response(request, error)


#: Our pages need their stylesheet and nothing else: no script, no plugin, no frame.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: Anything else — JSON, a sender's file, an evidence or a vročilnica — is data: even
#: opened in a browser it runs nothing and reaches nothing (found in review: a part sent
#: as text/xml with XHTML script was same-origin active content but for ``attachment``).
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; sandbox"
#: A PDF opened in a browser's viewer, which a sandbox would block (Chromium).
PDF_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def _csp(path: str, content_type: str) -> str:
    """By what the answer is: one of our pages (HTML outside the API), a PDF, or data — a
    sender's part is data whatever type it claims (an operator may allow text/html)."""
    if content_type == "text/html" and not path.startswith("/api/"):
        return PAGE_POLICY
    return PDF_POLICY if content_type == "application/pdf" else DATA_POLICY


async def security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Every answer's security headers, set as it is prepared (``on_response_prepare``):
    a middleware sets them after the handler returned, which is too late for a streamed
    answer — part downloads went out without ``no-store`` or ``nosniff``."""
    headers = response.headers
    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Content-Security-Policy", _csp(request.path, response.content_type))
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def plain_url(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A NUL in the decoded path or query (``%00``) is refused before any handler: no
    address, id or search can hold one, and PostgreSQL text refuses it (a 500 before)."""
    if "\x00" in request.path or any("\x00" in k + v for k, v in request.query.items()):
        raise BadRequest("The address has a NUL character.", "invalid_text")
    return await handler(request)


@web.middleware
async def wind_down(request: web.Request, handler: Handler) -> web.StreamResponse:
    """R8.5: from day 45 of a wind-down the service answers operators only (the CLI); every
    request but health and readiness is refused (403 ``service_ceased``)."""
    if not request.path.startswith(CEASED_PREFIXES):
        svc = services(request)
        await svc.wind_down.gate.refuse_if_ceased(svc.clock.now())
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """R1.1/R1.3: every request but health is authenticated by its client certificate."""
    if request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    svc = services(request)
    der = client_certificate(request, svc.settings.trusted_proxies)
    if der is None:
        raise AuthenticationRequired(
            "A qualified certificate is required: present your smart card certificate."
        )
    peer = peer_address(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session = await svc.sessions.resume(token, der, peer)
        request[PRINCIPAL] = Principal(session.check, session, peer)
    else:
        login = request.match_info.route.name in SESSION_STARTS
        if login and _embedded_from_elsewhere(request):
            # R1.6: an <img src> or fetch() on another site's page would start a session
            # (an audited record) and, R1.3, a live OCSP fetch, for every request it makes
            raise CsrfRejected("Another site cannot start a session here.")
        check = await svc.authenticator.authenticate(der, peer, force=login)
        request[PRINCIPAL] = Principal(check, None, peer)
    return await handler(request)


def _embedded_from_elsewhere(request: web.Request) -> bool:
    """A browser request that another site's page made, other than following a link to us
    (a top-level navigation, which is how a user arrives from an e-mail or a search). An
    ``<iframe>`` (or frame, object, embed) navigates too, but not to a document of its own
    (``Sec-Fetch-Dest``; found in review)."""
    headers = request.headers
    return headers.get("Sec-Fetch-Site") in ELSEWHERE and (
        headers.get("Sec-Fetch-Mode") != "navigate"
        or headers.get("Sec-Fetch-Dest", "document") != "document"
    )


def _origin_host(origin: str) -> str | None:
    """The host[:port] of an ``Origin`` header; None for one that is not a URL."""
    try:
        return urlsplit(origin).netloc
    except ValueError:  # e.g. "http://[": an unclosed IPv6 bracket
        return None


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """R1.6: a client certificate is an ambient credential, like a cookie.

    So every state-changing request must prove it comes from our own pages or from a
    program: a browser's cross-site request (``Sec-Fetch-Site``/``Origin`` of another
    site) is refused, and a request made in a browser session must echo the session's
    CSRF token (``X-CSRF-Token`` header or ``csrf_token`` form field). A GET that records
    something (:data:`RECORDING_READS`) gets the first check only: a link followed or an
    address typed is same-origin or ``none``, and carries no token.
    """
    recording = request.method == "GET" and request.match_info.route.name in RECORDING_READS
    if request.path.startswith(PUBLIC_PREFIXES) or not (
        recording or request.method in UNSAFE_METHODS
    ):
        return await handler(request)
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise CsrfRejected("Cross-site requests cannot change anything here.")
    origin = request.headers.get("Origin")
    if origin is not None and _origin_host(origin) != request.host:
        raise CsrfRejected("Cross-origin requests cannot change anything here.")
    principal: Principal | None = request.get(PRINCIPAL)
    if not recording and principal is not None and principal.session is not None:
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type == "application/x-www-form-urlencoded":
            try:
                form: Any = await request.post()
            except (UnicodeDecodeError, ValueError):  # not the form our pages send
                raise CsrfRejected("The form is not readable; reload the page.") from None
            sent = form.get("csrf_token")
        if not isinstance(sent, str) or not secrets.compare_digest(
            sent, principal.session.row.csrf_token
        ):
            raise CsrfRejected("The form is missing its CSRF token; reload the page.")
    return await handler(request)


MIDDLEWARES = [request_context, errors, plain_url, wind_down, authenticate, csrf]
