"""A person who is a party on both ends of a delivery (R5.3, R6.3).

Dejan reads the court's mailbox (a delegate with ``read``) and is also the recipient of
the court's return-receipt delivery — a clerk served personally by their own employer. As
the recipient he must be served like anyone else: no content before he signs the
vročilnica, the vročilnica his to sign, the handover recorded when he downloads. Reading
as the sender's member is his choice (``?mailbox=``), never the default that silently
skips the formal service. Before, the sender's side always came first: he read the content
unserved, and could not accept at all (404), so the delivery was left to be deemed served.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import PkiService
from tests.integration.test_deliveries import (
    BOJAN,
    COURT,
    DEJAN,
    PDF,
    _receipt,
    _sign_receipt,
    get,
    send,
)
from tests.mailbox_support import add_delegate, open_delivery_world
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        await open_delivery_world(running)
        status, _ = await add_delegate(running, "qualified-qscd", COURT, "delegate", ["read"])
        assert status == 201
        yield running


async def handovers(server: RunningServer, did: str) -> int:
    return int(
        await server.services.pool.fetchval(
            "SELECT count(*) FROM evidence WHERE delivery_id = $1::uuid"
            " AND event = 'ContentHandover'",
            did,
        )
    )


async def test_r5_3_the_recipient_is_served_even_when_he_reads_the_senders_mailbox(
    server: RunningServer,
) -> None:
    status, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    assert status == 201
    did = sent["delivery_id"]
    delivery = f"/api/v1/deliveries/{did}"

    status, body, _ = await get(server, "delegate", delivery)
    view = json.loads(body)
    assert status == 200 and "message" not in view and "parts" not in view
    assert view["read_as"] == DEJAN
    status, body, _ = await get(server, "delegate", f"{delivery}/parts/0")
    assert (status, json.loads(body)["reason"]) == (403, "not_accepted")
    status, body, _ = await get(server, "delegate", f"{delivery}/evidence")
    assert {e["recipient"] for e in json.loads(body)["evidence"]} == {DEJAN}

    # as the court's reader, on request: the sender's view, and no handover to anyone
    status, body, _ = await get(server, "delegate", f"{delivery}?mailbox={COURT}")
    view = json.loads(body)
    assert (status, view["message"], view["read_as"]) == (200, "Glej prilogo.", COURT)
    # the links given carry the party chosen: following them reads as the court still
    status, data, _ = await get(server, "delegate", view["parts"][0]["href"])
    assert (status, data) == (200, PDF)
    assert await handovers(server, did) == 0
    status, body, _ = await get(server, "delegate", f"{delivery}/evidence?mailbox={COURT}")
    listed = json.loads(body)["evidence"]
    assert "SubmissionAcceptance" in [e["event"] for e in listed]  # the sender's, naming all
    for item in listed:
        status, _, _ = await get(server, "delegate", item["href"])
        assert status == 200, item

    status, document, rid = await _receipt(server, "delegate", did)
    assert status == 200 and did.encode() in document
    status, body = await _sign_receipt(server, "delegate", "delegate", did, document, rid)
    assert (status, body) == (200, {"accepted": 1})
    status, data, _ = await get(server, "delegate", f"{delivery}/parts/0")
    assert (status, data) == (200, PDF)
    assert await handovers(server, did) == 1


async def test_r6_3_a_mailbox_named_must_be_a_party_the_caller_reads(
    server: RunningServer,
) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    delivery = f"/api/v1/deliveries/{sent['delivery_id']}"
    # Bojan's mailbox is no party; Dejan does not read it either
    for path in (delivery, f"{delivery}/parts/0", f"{delivery}/evidence"):
        status, _, _ = await get(server, "delegate", f"{path}?mailbox={BOJAN}")
        assert status == 404, path
    # Bojan reads his own mailbox, which is no party: still nothing to see
    status, _, _ = await get(server, "qualified", f"{delivery}?mailbox={BOJAN}")
    assert status == 404
    # the vročilnica is the recipient's: not to be had as the sender's member
    status, body, _ = await get(server, "delegate", f"{delivery}/receipt?mailbox={COURT}")
    assert status == 404, body
    # the address is read as addresses are everywhere (case-insensitive)
    status, body, _ = await get(server, "delegate", f"{delivery}?mailbox={COURT.upper()}")
    assert status == 200 and json.loads(body)["message"] == "Glej prilogo."
