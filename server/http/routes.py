"""The one route table (API + UI)."""

from __future__ import annotations

from aiohttp import web

from .api import health, session
from .ui import home


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/api/v1/session", session.get_session)
    app.router.add_post("/logout", session.logout)
    app.router.add_get("/", home.home)
    app.router.add_get("/logged-out", home.logged_out)
