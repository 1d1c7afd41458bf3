"""A GET that records something refuses a browser's cross-site request (R1.6, R6.1, R5.3).

The client certificate is an ambient credential: a page on another site could make the
recipient's browser fetch ``…/parts/0`` (an ``<img src>``) and so seal ContentHandover —
evidence that the recipient opened a delivery they never saw — or have a vročilnica
issued. Such requests carry ``Sec-Fetch-Site: cross-site`` (or ``same-site``); a link
followed on our pages (``same-origin``), an address typed (``none``) and programs (no
header) are served as before.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.test_deliveries import COURT, DEJAN, PDF, send
from tests.support import RunningServer

pytestmark = pytest.mark.integration


async def fetch(server: RunningServer, path: str, site: str | None) -> tuple[int, bytes]:
    headers = {"Sec-Fetch-Site": site} if site is not None else {}
    async with server.client("delegate") as client, client.get(path, headers=headers) as r:
        return r.status, await r.read()


async def recorded(server: RunningServer, did: str) -> tuple[int, int]:
    pool = server.services.pool
    handovers = await pool.fetchval(
        "SELECT count(*) FROM evidence WHERE delivery_id = $1::uuid AND event = 'ContentHandover'",
        did,
    )
    receipts = await pool.fetchval("SELECT count(*) FROM receipts")
    return int(handovers), int(receipts)


async def test_r6_1_a_cross_site_download_records_no_handover(server: RunningServer) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    did = sent["delivery_id"]
    part = f"/api/v1/deliveries/{did}/parts/0"
    for site in ("cross-site", "same-site"):
        status, body = await fetch(server, part, site)
        assert (status, json.loads(body)["reason"]) == (403, "csrf"), site
        assert await recorded(server, did) == (0, 0)
    # reading it is not refused: the delivery's JSON is no record
    status, _ = await fetch(server, f"/api/v1/deliveries/{did}", "cross-site")
    assert status == 200
    assert await fetch(server, part, "same-origin") == (200, PDF)
    assert await recorded(server, did) == (1, 0)
    assert await fetch(server, part, "none") == (200, PDF)
    assert await fetch(server, part, None) == (200, PDF)
    assert await recorded(server, did) == (1, 0)  # still once


async def test_r5_3_a_cross_site_request_is_issued_no_vrocilnica(server: RunningServer) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    receipt = f"/api/v1/deliveries/{did}/receipt"
    status, body = await fetch(server, receipt, "cross-site")
    assert (status, json.loads(body)["reason"]) == (403, "csrf")
    assert await recorded(server, did) == (0, 0)
    status, document = await fetch(server, receipt, "same-origin")
    assert status == 200 and did.encode() in document
    assert await recorded(server, did) == (0, 1)
