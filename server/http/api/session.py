"""``/api/v1/session`` and ``/logout`` (R1.1–R1.6)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...trust.validation import CertificateCheck
from ..context import SESSION_COOKIE, Principal, principal, services


def session_json(check: CertificateCheck, csrf_token: str | None) -> dict[str, Any]:
    facts = check.facts
    body: dict[str, Any] = {
        "subject": facts.subject,
        "given_name": facts.given_name,
        "surname": facts.surname,
        "person_id": facts.person_id,
        "issuer": facts.issuer,
        "serial": facts.serial,
        "not_after": facts.not_after.isoformat(),
        "qualified": facts.qc.compliance,
        "qscd": facts.qc.sscd,
        "loa": check.loa.value,
        "checked_at": check.checked_at.isoformat(),
        "validation": check.as_record(),
    }
    if csrf_token is not None:
        body["csrf_token"] = csrf_token
    return body


def set_session_cookie(response: web.StreamResponse, token: str) -> None:
    # __Host- prefix: Secure, Path=/, no Domain — the browser enforces all three. No
    # Max-Age: the browser keeps it for the browser session, and the server ends it after
    # 30 minutes without activity (R1.6), counted from the last request, not from login.
    response.set_cookie(
        SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict"
    )


async def ensure_session(request: web.Request) -> tuple[Principal, str | None]:
    """The caller's browser session, started now when there is none (the login; its
    certificate check is a fresh one: :data:`~server.http.middlewares.SESSION_STARTS`)."""
    who = principal(request)
    if who.session is not None:
        return who, None
    opened = await services(request).sessions.start(who.check, who.peer)
    return Principal(who.check, opened, who.peer), opened.token


async def get_session(request: web.Request) -> web.Response:
    who, new_token = await ensure_session(request)
    assert who.session is not None
    response = web.json_response(session_json(who.check, who.session.row.csrf_token))
    if new_token is not None:
        set_session_cookie(response, new_token)
    return response


async def logout(request: web.Request) -> web.Response:
    who = principal(request)
    if who.session is not None:
        await services(request).sessions.logout(who.session.row)
    if "text/html" in request.headers.get("Accept", ""):
        response = web.Response(status=303, headers={"Location": "/logged-out"})
    else:
        response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response
