"""``create_app(settings)``: the aiohttp application with its resources and services.

Resources live in one cleanup context: the asyncpg pool (migrations applied at start under
an advisory lock), the HTTP client session used for OCSP/CRL/AIA fetching, the services
built over them, and the job scheduler (R8.7) whose ``outbox`` job sends the notifications
(R5.4). Tests pass a :class:`~server.clock.ManualClock`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from .clock import Clock, SystemClock
from .content.factory import content_store_from_settings
from .evidence.factory import sealer_from_settings, timestamper_from_settings
from .evidence.signer import load_signer
from .http import middlewares, routes
from .http.context import JOBS, SERVICES
from .jobs.scheduler import JobScheduler
from .jobs.setup import job_runner, scheduled_names
from .notify.notifier import Notifier
from .receipts import receipt_issuer_from_settings
from .services.audit_seal import audit_sealer
from .services.wiring import build_services
from .settings import Settings
from .store import migrate
from .store.db import create_pool, full_reset
from .trust.validation import CertificateChecker, load_certificates

PACKAGE_DIR = Path(__file__).resolve().parent


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
    trust_clock: Clock | None = None,
) -> web.Application:
    """The application. Tests pass a ManualClock for the business rules; certificates are
    validated by ``trust_clock`` (the system clock unless given), see CertificateChecker.now.
    """
    app = web.Application(middlewares=middlewares.MIDDLEWARES, client_max_size=1024**2)
    app.on_response_prepare.append(middlewares.security_headers)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(PACKAGE_DIR / "templates")),
        autoescape=jinja2.select_autoescape(default=True),
    )
    routes.setup(app)
    app.router.add_static("/static/", PACKAGE_DIR / "static")
    app.cleanup_ctx.append(
        _resources(settings, clock or SystemClock(), notifier, trust_clock or SystemClock())
    )
    return app


def _resources(  # type: ignore[no-untyped-def]
    settings: Settings, clock: Clock, notifier: Notifier | None, trust_clock: Clock
):
    async def context(app: web.Application) -> AsyncIterator[None]:
        anchors = load_certificates(settings.anchor_paths)
        intermediates = load_certificates(settings.intermediate_paths)
        pool = await create_pool(settings.database_url)
        try:
            async with pool.acquire() as conn:
                await migrate.apply(conn)
                await full_reset(conn)  # it took (and released) a session advisory lock
            timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout_seconds)
            async with aiohttp.ClientSession(timeout=timeout) as http_client:
                checker = CertificateChecker(
                    anchors,
                    intermediates,
                    settings.revocation,
                    http_client,
                    fetch_timeout=settings.fetch_timeout_seconds,
                    clock=trust_clock,
                )
                content = content_store_from_settings(settings, create_dev_key=True)
                # Once each: the evidence, the receipts and the audit seals share them.
                signer = load_signer(settings)
                timestamper = timestamper_from_settings(settings, http_client)
                sealer = sealer_from_settings(
                    settings, http_client, signer=signer, timestamper=timestamper
                )
                receipts = receipt_issuer_from_settings(settings, http_client, signer)
                services = build_services(
                    settings,
                    clock,
                    pool,
                    checker,
                    content,
                    sealer,
                    receipts,
                    audit_sealer(pool, signer, timestamper),
                )
                app[SERVICES] = services
                # min 0: a node whose jobs are all idle holds no extra connection
                lock_pool = await create_pool(settings.database_url, min_size=0, max_size=4)
                runner = job_runner(settings, clock, services, notifier, lock_pool)
                app[JOBS] = runner
                scheduler = JobScheduler(runner, scheduled_names(settings, runner))
                scheduler.start()
                try:
                    yield
                finally:
                    await scheduler.stop()
                    await lock_pool.close()
        finally:
            await pool.close()

    return context
