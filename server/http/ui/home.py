"""The landing page after certificate login (R1.2, R1.6, R9.4)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from ..api.session import ensure_session, session_json, set_session_cookie


async def home(request: web.Request) -> web.Response:
    who, new_token = await ensure_session(request)
    assert who.session is not None
    context = {
        "me": session_json(who.check, None),
        "csrf_token": who.session.row.csrf_token,
    }
    response = aiohttp_jinja2.render_template("home.html", request, context)
    if new_token is not None:
        set_session_cookie(response, new_token)
    return response


async def logged_out(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("logged_out.html", request, {})
