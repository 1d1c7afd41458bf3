"""The services of a command-line process (``vep run-job``, ``vep jobs``, ``vep admin``):
the same stores and rules as the server, over a small pool, for one command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from .clock import Clock
from .content.factory import content_store_from_settings
from .evidence.factory import sealer_from_settings, timestamper_from_settings
from .evidence.signer import load_signer
from .services.audit_seal import audit_sealer
from .services.container import Services
from .services.wiring import build_services
from .settings import Settings
from .store.db import create_pool
from .trust.validation import CertificateChecker, load_certificates


@asynccontextmanager
async def cli_services(settings: Settings, clock: Clock) -> AsyncIterator[Services]:
    pool = await create_pool(settings.database_url, max_size=4)
    try:
        timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            checker = CertificateChecker(
                load_certificates(settings.anchor_paths),
                load_certificates(settings.intermediate_paths),
                settings.revocation,
                http,
                fetch_timeout=settings.fetch_timeout_seconds,
            )
            content = content_store_from_settings(settings)
            signer = load_signer(settings)  # once each: evidence and audit seals share them
            timestamper = timestamper_from_settings(settings, http)
            yield build_services(
                settings,
                clock,
                pool,
                checker,
                content,
                sealer_from_settings(settings, http, signer=signer, timestamper=timestamper),
                audit_seal=audit_sealer(pool, signer, timestamper),
            )
    finally:
        await pool.close()
