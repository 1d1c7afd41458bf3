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

from tests.conftest import PkiService
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


async def test_our_pages_run_no_script_and_what_we_serve_as_data_runs_nothing(
    server: RunningServer,
) -> None:
    """Found in review: ``default-src 'self'`` let a page load scripts from our origin, and
    a sender's file served as ``text/xml`` (XHTML with a script) was active content on our
    origin but for ``Content-Disposition: attachment``. Pages get their stylesheet only;
    everything else is sandboxed data (a PDF, which a sandbox would keep from the viewer,
    no less locked down otherwise)."""
    from server.http.middlewares import DATA_POLICY, PAGE_POLICY, PDF_POLICY

    xhtml = b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>'
    _, sent = await send(
        server, "qualified-qscd", COURT, [DEJAN], files=[("a.xml", xhtml, "text/xml")]
    )
    did = sent["delivery_id"]
    async with server.client("delegate") as client:
        async with client.get("/", headers={"Accept": "text/html"}) as r:
            assert r.content_type == "text/html"
            assert r.headers["Content-Security-Policy"] == PAGE_POLICY
            assert "script-src" not in PAGE_POLICY and "default-src 'none'" in PAGE_POLICY
        async with client.get(f"/api/v1/deliveries/{did}/parts/0") as r:
            assert (r.status, await r.read()) == (200, xhtml)
            assert r.headers["Content-Security-Policy"] == DATA_POLICY
        async with client.get(f"/api/v1/deliveries/{did}") as r:
            assert r.headers["Content-Security-Policy"] == DATA_POLICY
        async with client.get(sent["evidence"][1]["href"] + ".pdf") as r:
            assert r.content_type == "application/pdf"
            assert r.headers["Content-Security-Policy"] == PDF_POLICY
    assert DATA_POLICY.endswith("sandbox")


async def test_a_part_an_operator_lets_be_html_is_still_sandboxed_data(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Review of the policy: it was chosen by content type, so a part of type text/html
    (if an operator allows it) got the page policy, without the sandbox."""
    from server.http.middlewares import DATA_POLICY
    from tests.mailbox_support import open_delivery_world
    from tests.support import make_settings, running_server

    html = b"<html><body><form action=/logout method=post></form></body></html>"
    settings = make_settings(dev_pki, database_url, allowed_content_types=("text/html",))
    async with running_server(settings, dev_pki) as server:
        await open_delivery_world(server)
        _, sent = await send(
            server, "qualified-qscd", COURT, [DEJAN], files=[("a.html", html, "text/html")]
        )
        part = f"/api/v1/deliveries/{sent['delivery_id']}/parts/0"
        async with server.client("delegate") as client, client.get(part) as r:
            assert (r.status, r.content_type) == (200, "text/html")
            assert r.headers["Content-Security-Policy"] == DATA_POLICY
