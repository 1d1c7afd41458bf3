"""Liveness and readiness for monitoring (R9.5); no authentication, no details leaked."""

from __future__ import annotations

from aiohttp import web

from ...store.db import ping
from ..context import services


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await ping(services(request).pool):
        return web.json_response({"status": "ready", "database": "ok"})
    return web.json_response({"status": "unavailable", "database": "down"}, status=503)
