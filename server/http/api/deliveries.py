"""Deliveries: submit (multipart, streamed), read, download, evidence, return receipts
(R5, R6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from urllib.parse import quote

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from ...errors import BadRequest
from ...services.mailboxes import Access, Need
from ...services.submission import IncomingPart
from ...store.deliveries import DeliveryRow, ListedDelivery
from ..context import principal, services
from .common import MALFORMED, malformed_multipart, read_body
from .disposition import attachment, part_names

CHUNK = 1024 * 1024
MAX_SIGNED_RECEIPT = 1024 * 1024


def _reader(request: web.Request) -> MultipartReader:
    """The body's parts, read as ``multipart/mixed``.

    The syntax is the same (RFC 7578 §4.1 builds form-data on RFC 2046 §5.1); what
    aiohttp adds for ``form-data`` is RFC 7578 §4.6: it parses the first part's
    Content-Disposition with its slow parser (see :mod:`.disposition`; ~6 % of the
    server's time under the delivery benchmark, issue 4) to see whether it is a
    ``_charset_`` field, and if so consumes it. This API has no use for one — the metadata
    is JSON, UTF-8 by RFC 8259, and files are bytes — so a ``_charset_`` part is refused
    like any part that is not the metadata first."""
    _, _, parameters = request.headers[hdrs.CONTENT_TYPE].partition(";")
    try:
        return MultipartReader(
            {hdrs.CONTENT_TYPE: f"multipart/mixed;{parameters}"},
            request.content,
            client_max_size=request.client_max_size,
        )
    except ValueError:  # aiohttp's word for a Content-Type without a boundary
        raise BadRequest(
            "The multipart Content-Type names no boundary.", "malformed_multipart"
        ) from None


async def _incoming(request: web.Request) -> AsyncIterator[IncomingPart]:
    """aiohttp's multipart reader as the service's stream of parts (each read in chunks)."""
    # The raw header, not ``request.content_type``: that parses it with the e-mail package
    # (cached per distinct value, and every multipart boundary is a new value).
    if not request.headers.get("Content-Type", "").lstrip().lower().startswith("multipart/"):
        raise BadRequest(
            "Send multipart/form-data with metadata and file parts.", "unsupported_media_type"
        )
    reader = _reader(request)
    while True:
        try:
            part = await reader.next()
        except MALFORMED:
            raise malformed_multipart() from None
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart is not supported.", "nested_multipart")

        async def chunks(p: BodyPartReader = part) -> AsyncIterator[bytes]:
            while True:
                try:
                    chunk = await p.read_chunk(CHUNK)
                except MALFORMED:
                    raise malformed_multipart() from None
                if not chunk:
                    return
                yield chunk

        field, filename = part_names(part.headers.get(hdrs.CONTENT_DISPOSITION))
        yield IncomingPart(
            field=field or "",
            filename=filename,
            media_type=part.headers.get("Content-Type", "application/octet-stream"),
            chunks=chunks(),
        )


def _listed(d: ListedDelivery) -> dict[str, object]:
    return {
        "delivery_id": str(d.delivery_id),
        "kind": d.kind,
        "sender": d.sender_address,
        "subject": d.subject,
        "at": d.at.isoformat(),
        "state": d.state,
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _delivery(
    d: DeliveryRow,
    content_visible: bool,
    recipient: str | None,
    message: Callable[[DeliveryRow], str],
    suffix: str = "",
) -> dict[str, object]:
    """The delivery as one party sees it; ``message`` opens the sealed message (R5.5), and
    is called only when the content is shown."""
    deleted = d.deleted_for(recipient)
    body: dict[str, object] = {
        "delivery_id": str(d.delivery_id),
        "kind": d.kind,
        "sender": d.sender_address,
        "subject": d.subject,
        "reference": d.reference,
        "submitted_at": d.submitted_at.isoformat(),
        "recipients": [
            {
                "address": r.recipient_address,
                "state": r.state,
                "decided_at": r.decided_at.isoformat() if r.decided_at else None,
                "handed_over_at": r.handed_over_at.isoformat() if r.handed_over_at else None,
            }
            for r in d.recipients
            if recipient is None or r.recipient_address == recipient
        ],
        "content_purged_at": _iso(d.content_purged_at),
        "content_deleted_at": _iso(deleted),
    }
    # R8.1: content this party deleted from its mailbox, or that is disposed of, is no
    # longer shown (the parts' links would only answer 403 purged)
    if content_visible and deleted is None and d.content_purged_at is None:
        body["message"] = message(d)
        body["parts"] = [
            {
                "part_no": p.part_no,
                "name": p.name,
                "media_type": p.media_type,
                "size": p.size,
                "sha256": p.sha256,
                "href": f"/api/v1/deliveries/{d.delivery_id}/parts/{p.part_no}{suffix}",
                "sender_signature": p.sender_signature,
            }
            for p in d.parts
        ]
    return body


async def submit(request: web.Request) -> web.Response:
    svc = services(request)
    address, check = request.match_info["address"], principal(request).check

    async def authorize(naming: Sequence[str]) -> Access:
        return await svc.mailboxes.authorize(address, check, Need.MEMBER, naming=naming)

    submitted = await svc.submission.submit(authorize, _incoming(request))
    return web.json_response(
        {
            "delivery_id": str(submitted.delivery_id),
            "kind": submitted.kind,
            "to": list(submitted.recipients),
            "evidence": [
                {
                    "evidence_id": e.evidence_id,
                    "event": str(e.event),
                    "href": f"/api/v1/deliveries/{submitted.delivery_id}/evidence/{e.evidence_id}",
                }
                for e in submitted.evidence
            ],
        },
        status=201,
    )


async def _box(request: web.Request, box: str) -> web.Response:
    svc = services(request)
    access = await svc.mailboxes.authorize(
        request.match_info["address"], principal(request).check, Need.MEMBER
    )
    rows, next_cursor = await svc.delivery_access.listing(access, box, request.query.get("after"))
    return web.json_response({"deliveries": [_listed(r) for r in rows], "next": next_cursor})


async def inbox(request: web.Request) -> web.Response:
    return await _box(request, "inbox")


async def outbox(request: web.Request) -> web.Response:
    return await _box(request, "outbox")


def _read_as(request: web.Request) -> str | None:
    """``?mailbox=``: the party the caller reads a delivery as, when they read several
    (see :meth:`.DeliveryAccessService.view`)."""
    return request.query.get("mailbox")


def _same_party(request: web.Request) -> str:
    """The query the links of an answer carry, so that following them reads as the same
    party (without it, a part link from the sender's view handed the content over)."""
    named = _read_as(request)
    return "" if named is None else f"?mailbox={quote(named, safe='@')}"


async def show(request: web.Request) -> web.Response:
    view = await services(request).delivery_access.view(
        request.match_info["id"], principal(request).check, _read_as(request)
    )
    reading = services(request).delivery_access
    body = _delivery(
        view.delivery,
        view.content_visible,
        view.recipient,
        reading.message_of,
        _same_party(request),
    )
    body["read_as"] = view.recipient or view.delivery.sender_address
    return web.json_response(body)


async def download(request: web.Request) -> web.StreamResponse:
    try:
        part_no = int(request.match_info["part"])
    except ValueError:
        raise BadRequest("Part numbers are integers.", "bad_part") from None
    part, chunks = await services(request).delivery_access.download(
        request.match_info["id"], part_no, principal(request).check, _read_as(request)
    )
    # The first chunk opens before the status line goes out: a part that does not open
    # is a clear 503 content_unavailable, not a 200 cut short.
    first = await anext(chunks, b"")
    response = web.StreamResponse(
        headers={
            "Content-Type": part.media_type,
            "Content-Length": str(part.size),
            "Content-Disposition": attachment(part.name),
            "X-Content-SHA256": part.sha256,
        }
    )
    await response.prepare(request)
    await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def evidence_list(request: web.Request) -> web.Response:
    rows = await services(request).delivery_access.evidence_list(
        request.match_info["id"], principal(request).check, _read_as(request)
    )
    suffix = _same_party(request)
    return web.json_response(
        {
            "evidence": [
                {
                    "evidence_id": str(r.evidence_id),
                    "event": r.event,
                    "recipient": r.recipient_address,
                    "event_time": r.event_time.isoformat(),
                    "sha256": r.sha256,
                    "qualified": r.qualified,
                    "href": f"/api/v1/deliveries/{r.delivery_id}/evidence/{r.evidence_id}" + suffix,
                }
                for r in rows
            ]
        }
    )


async def evidence_item(request: web.Request) -> web.Response:
    row = await services(request).delivery_access.evidence_item(
        request.match_info["id"],
        request.match_info["eid"],
        principal(request).check,
        _read_as(request),
    )
    return web.Response(
        body=row.xml,
        content_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="evidence-{row.evidence_id}.xml"'},
    )


async def evidence_pdf(request: web.Request) -> web.Response:
    row, pdf = await services(request).delivery_access.evidence_pdf(
        request.match_info["id"],
        request.match_info["eid"],
        principal(request).check,
        _read_as(request),
    )
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="receipt-{row.evidence_id}.pdf"'},
    )


async def receipt(request: web.Request) -> web.Response:
    issued = await services(request).acceptance.issue_receipt(
        request.match_info["id"], principal(request).check, _read_as(request)
    )
    return web.Response(
        body=issued.document,
        content_type="application/xml",
        headers={"X-Receipt-Id": str(issued.receipt_id)},
    )


async def accept_signed(request: web.Request) -> web.Response:
    receipt_id = request.query.get("receipt_id") or request.headers.get("X-Receipt-Id") or ""
    signature = await read_body(request, MAX_SIGNED_RECEIPT)
    count = await services(request).acceptance.accept_signed(
        request.match_info["id"], principal(request).check, receipt_id, signature, _read_as(request)
    )
    return web.json_response({"accepted": count})


async def accept_login(request: web.Request) -> web.Response:
    count = await services(request).acceptance.accept_by_login(
        request.match_info["id"], principal(request).check, _read_as(request)
    )
    return web.json_response({"accepted": count})


async def reject(request: web.Request) -> web.Response:
    count = await services(request).acceptance.reject(
        request.match_info["id"], principal(request).check, _read_as(request)
    )
    return web.json_response({"rejected": count})
