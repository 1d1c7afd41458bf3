"""The subscriber's side of the lifecycle: deleting content early (R8.1) and closing the
mailbox with a signed request (R8.3)."""

from __future__ import annotations

from aiohttp import web

from ...services.closure import MAX_SIGNATURE
from ...services.mailboxes import Need
from ..context import principal, services
from .common import read_body


async def delete_content(request: web.Request) -> web.Response:
    """R8.1: ``DELETE /api/v1/deliveries/{id}/content[?mailbox=]`` — a member with
    ``manage`` deletes the content from one party's mailbox once that party has it; the
    copy is disposed of (evidence stays and records it) when every party asked."""
    done = await services(request).retention.purge_on_request(
        request.match_info["id"], principal(request).check, request.query.get("mailbox")
    )
    purged = done.content_purged_at
    return web.json_response(
        {
            "mailbox": done.mailbox,
            "content_deleted_at": done.deleted_at.isoformat(),
            "content_purged_at": purged.isoformat() if purged else None,
        }
    )


async def closure_request(request: web.Request) -> web.Response:
    access = await services(request).mailboxes.authorize(
        request.match_info["address"], principal(request).check, Need.CUSTODIAN
    )
    document = services(request).closure.issue(access)
    return web.Response(body=document, content_type="text/plain", charset="utf-8")


async def close(request: web.Request) -> web.Response:
    access = await services(request).mailboxes.authorize(
        request.match_info["address"], principal(request).check, Need.CUSTODIAN
    )
    signature = await read_body(request, MAX_SIGNATURE)
    at = await services(request).closure.close(access, signature)
    return web.json_response({"state": "closed", "closed_at": at.isoformat()})
