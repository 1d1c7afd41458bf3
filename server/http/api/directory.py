"""``/api/v1/directory`` (logged-in users, R4.1–R4.3) and ``/reference-list`` (public, R4.4)."""

from __future__ import annotations

from aiohttp import web

from ..context import principal, services


async def search(request: web.Request) -> web.Response:
    entries = await services(request).directory.search(
        principal(request).check, request.query.get("q")
    )
    return web.json_response(
        {
            "results": [
                {
                    "address": e.address,
                    "name": e.name,
                    "kind": e.kind,
                    "registration_number": e.registration_number,
                    "city": e.city,
                }
                for e in entries
            ]
        }
    )


async def reference_list(request: web.Request) -> web.Response:
    return web.json_response({"businesses": await services(request).directory.reference_list()})
