"""``/api/v1/mailboxes``: the caller's mailboxes, members, settings (R3, R1.5, R1.6, R3.4)."""

from __future__ import annotations

from aiohttp import web

from ...services.mailboxes import Access, Need
from ...store.contacts import NotificationAddress
from ...store.memberships import Membership
from ..context import principal, services
from .common import read_json


def _member_json(m: Membership) -> dict[str, object]:
    return {
        "person_id": m.person_id,
        "role": m.role,
        "permissions": list(m.permissions),
        "certificates": len(m.certificates),
        "added_at": m.added_at.isoformat(),
    }


def _contact_json(c: NotificationAddress) -> dict[str, object]:
    return {"email": c.email, "confirmed": c.confirmed_at is not None}


async def _access(request: web.Request, need: Need = Need.MEMBER, enrolled: bool = True) -> Access:
    return await services(request).mailboxes.authorize(
        request.match_info["address"], principal(request).check, need, enrolled
    )


async def list_mine(request: web.Request) -> web.Response:
    rows = await services(request).mailboxes.accessible(principal(request).check)
    return web.json_response(
        {
            "mailboxes": [
                {
                    "address": r.address,
                    "display_name": r.display_name,
                    "state": r.state,
                    "kind": r.kind,
                    "public_body": r.public_body,
                    "role": r.role,
                    "permissions": list(r.permissions),
                    "certificate_enrolled": r.certificate_enrolled,
                }
                for r in rows
            ]
        }
    )


async def show(request: web.Request) -> web.Response:
    access = await _access(request)
    m = access.mailbox
    body: dict[str, object] = {
        "address": m.address,
        "display_name": m.display_name,
        "state": m.state,
        "kind": m.kind,
        "public_body": m.public_body,
        "role": access.membership.role,
        "permissions": list(access.membership.permissions),
    }
    if access.has("manage"):
        body["members"] = [
            _member_json(x) for x in await services(request).mailboxes.members(access)
        ]
    return web.json_response(body)


async def add_delegate(request: web.Request) -> web.Response:
    access = await _access(request, Need.CUSTODIAN)
    added = await services(request).mailboxes.add_delegate(access, await read_json(request))
    return web.json_response(_member_json(added), status=201)


async def update_delegate(request: web.Request) -> web.Response:
    access = await _access(request, Need.CUSTODIAN)
    await services(request).mailboxes.set_permissions(
        access, request.match_info["person_id"], await read_json(request)
    )
    return web.Response(status=204)


async def remove_delegate(request: web.Request) -> web.Response:
    access = await _access(request, Need.CUSTODIAN)
    await services(request).mailboxes.remove_delegate(access, request.match_info["person_id"])
    return web.Response(status=204)


async def transfer_custody(request: web.Request) -> web.Response:
    access = await _access(request, Need.CUSTODIAN)
    await services(request).mailboxes.transfer_custody(access, await read_json(request))
    return web.Response(status=204)


async def enroll_certificate(request: web.Request) -> web.Response:
    access = await _access(request, Need.MEMBER, enrolled=False)
    await services(request).mailboxes.enroll_current_certificate(access, await read_json(request))
    return web.Response(status=204)


async def get_settings(request: web.Request) -> web.Response:
    access = await _access(request, Need.MANAGE)
    s = await services(request).settings_service.get(access)
    return web.json_response(
        {
            "directory_listed": s.directory_listed,
            "reference_listed": s.reference_listed,
            "einvoice_signing_authorised": s.einvoice_signing_authorised,
            "encryption_certificate": s.encryption_certificate,
            "notification_addresses": [_contact_json(c) for c in s.notification_addresses],
        }
    )


async def update_settings(request: web.Request) -> web.Response:
    access = await _access(request, Need.MANAGE)
    await services(request).settings_service.update(access, await read_json(request))
    return web.Response(status=204)


async def add_notification_address(request: web.Request) -> web.Response:
    access = await _access(request, Need.MANAGE)
    email, confirmed = await services(request).settings_service.add_address(
        access, await read_json(request)
    )
    return web.json_response(
        {"email": email, "confirmed": confirmed}, status=200 if confirmed else 202
    )


async def confirm_notification_address(request: web.Request) -> web.Response:
    access = await _access(request, Need.MANAGE)
    await services(request).settings_service.confirm_address(
        access, request.match_info["email"], await read_json(request)
    )
    return web.Response(status=204)


async def remove_notification_address(request: web.Request) -> web.Response:
    access = await _access(request, Need.MANAGE)
    await services(request).settings_service.remove_address(access, request.match_info["email"])
    return web.Response(status=204)
