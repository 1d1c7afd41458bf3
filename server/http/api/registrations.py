"""``/api/v1/registrations``: register, fetch the contract, return it signed (R2)."""

from __future__ import annotations

from aiohttp import web

from ...errors import BadRequest
from ...store.registrations import Registration
from ..context import principal, services
from .common import read_body, read_json

#: A signed contract PDF or .p7s is small; bigger bodies are refused before reading.
MAX_SIGNED_CONTRACT = 10 * 1024 * 1024


def _registration_json(reg: Registration, address: str) -> dict[str, object]:
    base = f"/api/v1/registrations/{reg.registration_id}"
    return {
        "registration_id": str(reg.registration_id),
        "kind": reg.kind,
        "address": address,
        "state": "completed" if reg.completed_at else "awaiting_signature",
        "contract": f"{base}/contract.pdf",
        "contract_sha256": reg.contract_sha256.hex(),
        "sign_at": f"{base}/contract",
        "expires_at": reg.expires_at.isoformat(),
        "terms_version": reg.terms_version,
    }


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    started = await services(request).registrations.start(principal(request).check, body)
    return web.json_response(_registration_json(started.registration, started.address), status=201)


async def show(request: web.Request) -> web.Response:
    svc = services(request)
    reg = await svc.registrations.registration_of(
        request.match_info["id"], principal(request).check
    )
    address = reg.mailbox_address or f"{reg.local_part}@{svc.settings.mail_domain}"
    return web.json_response(_registration_json(reg, address))


async def contract_pdf(request: web.Request) -> web.Response:
    reg = await services(request).registrations.registration_of(
        request.match_info["id"], principal(request).check
    )
    return web.Response(
        body=reg.contract_pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="pogodba-{reg.local_part}.pdf"'},
    )


async def put_contract(request: web.Request) -> web.Response:
    submitted = await read_body(request, MAX_SIGNED_CONTRACT)
    if not submitted:
        raise BadRequest("Send the signed PDF or the detached .p7s.", "empty_body")
    opened = await services(request).registrations.submit_contract(
        request.match_info["id"], principal(request).check, submitted
    )
    return web.json_response(
        {"address": opened.address, "state": opened.state, "contract_id": str(opened.contract_id)},
        status=201,
    )
