"""``create_app(settings)``: the aiohttp application with its resources and services.

Resources live in one cleanup context: the asyncpg pool (migrations applied at start under
an advisory lock), the HTTP client session used for OCSP/CRL/AIA fetching, and the
services built over them. Tests pass a :class:`~server.clock.ManualClock`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from .clock import Clock, SystemClock
from .http import middlewares, routes
from .http.context import SERVICES
from .services.authentication import Authenticator
from .services.container import Services
from .services.sessions import SessionService
from .settings import Settings
from .store import migrate
from .store.audit import AuditStore
from .store.db import create_pool
from .store.persons import PersonStore
from .store.sessions import SessionStore
from .trust.validation import CertificateChecker, load_certificates

PACKAGE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=middlewares.MIDDLEWARES, client_max_size=1024**2)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(PACKAGE_DIR / "templates")),
        autoescape=jinja2.select_autoescape(default=True),
    )
    routes.setup(app)
    app.router.add_static("/static/", PACKAGE_DIR / "static")
    app.cleanup_ctx.append(_resources(settings, clock or SystemClock()))
    return app


def _resources(settings: Settings, clock: Clock):  # type: ignore[no-untyped-def]
    async def context(app: web.Application) -> AsyncIterator[None]:
        anchors = load_certificates(settings.anchor_paths)
        intermediates = load_certificates(settings.intermediate_paths)
        pool = await create_pool(settings.database_url)
        try:
            async with pool.acquire() as conn:
                await migrate.apply(conn)
            timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout_seconds)
            async with aiohttp.ClientSession(timeout=timeout) as http_client:
                checker = CertificateChecker(
                    anchors,
                    intermediates,
                    settings.revocation,
                    http_client,
                    fetch_timeout=settings.fetch_timeout_seconds,
                )
                audit = AuditStore(pool)
                persons = PersonStore(pool)
                authenticator = Authenticator(
                    checker,
                    persons,
                    audit,
                    clock,
                    timedelta(seconds=settings.revalidation_seconds),
                    settings.check_cache_size,
                )
                sessions = SessionService(
                    SessionStore(pool),
                    audit,
                    authenticator,
                    clock,
                    timedelta(seconds=settings.session_idle_seconds),
                )
                app[SERVICES] = Services(
                    settings, clock, pool, audit, persons, authenticator, sessions
                )
                yield
        finally:
            await pool.close()

    return context
