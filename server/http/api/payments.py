"""``POST /api/v1/payments/webhook``: the payment provider tells us of a payment (R8.2).

No client certificate: the provider authenticates by an HMAC-SHA256 signature over the
timestamp and the body (see :mod:`server.services.billing`); the body is read whole but
bounded, and nothing is recorded unless the signature and the timestamp hold.
"""

from __future__ import annotations

from aiohttp import web

from ...services.billing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from ..context import services
from .common import read_body

MAX_BODY = 64 * 1024


async def webhook(request: web.Request) -> web.Response:
    body = await read_body(request, MAX_BODY)
    headers = {name: request.headers.get(name, "") for name in (SIGNATURE_HEADER, TIMESTAMP_HEADER)}
    invoice = await services(request).billing.webhook(headers, body)
    return web.json_response(
        {"invoice": invoice.number, "paid": invoice.paid_at is not None}, status=200
    )
