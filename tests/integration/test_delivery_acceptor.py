"""A delegate who may only accept (R3.2: "accept return-receipt deliveries") can do just
that: list what waits for acceptance, see it as a recipient does before acceptance (R5.3:
sender, subject, dates), sign the vročilnica — and never read the content, the message or
the evidence, which need ``read``. Before, every delivery read required ``read``, so the
``accept`` permission alone could accept nothing (404) and the delivery was left to be
deemed served."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PkiService
from tests.integration.test_deliveries import (
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
PRIMER = COURT  # the company served here


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        await open_delivery_world(running)
        # Dejan's office serves Primer d.o.o.; at Primer, Nina may accept for the company
        # and Tomaž may only send
        await running.services.operator.set_public_body(DEJAN, True, "maja")
        for who, permissions in (("acceptor", ["accept"]), ("sender", ["send"])):
            status, body = await add_delegate(running, "qualified-qscd", PRIMER, who, permissions)
            assert status == 201, body
        yield running


async def _refusal(server: RunningServer, who: str, path: str) -> tuple[int, str]:
    status, body, _ = await get(server, who, path)
    return status, json.loads(body).get("reason", "")


async def test_r3_2_an_accept_only_delegate_accepts_and_reads_nothing(
    server: RunningServer,
) -> None:
    status, formal = await send(server, "delegate", DEJAN, [PRIMER], kind="return_receipt")
    assert status == 201, formal
    status, plain = await send(server, "delegate", DEJAN, [PRIMER])
    assert status == 201, plain
    did, other = formal["delivery_id"], plain["delivery_id"]
    inbox = f"/api/v1/mailboxes/{PRIMER}/inbox"

    # what waits for acceptance, and only that
    status, body, _ = await get(server, "acceptor", inbox)
    assert status == 200
    assert [d["delivery_id"] for d in json.loads(body)["deliveries"]] == [did]
    status, body, _ = await get(server, "acceptor", f"/api/v1/deliveries/{did}")
    view = json.loads(body)
    assert status == 200 and (view["sender"], view["subject"]) == (DEJAN, "Vabilo na narok")
    assert "message" not in view and "parts" not in view
    assert view["read_as"] == PRIMER
    # a registered delivery is not theirs to accept: not there at all
    assert (await get(server, "acceptor", f"/api/v1/deliveries/{other}"))[0] == 404
    eid = await server.services.pool.fetchval(
        "SELECT evidence_id FROM evidence WHERE delivery_id = $1::uuid"
        " AND event = 'NotificationForAcceptance'",
        did,
    )
    for path in (
        f"/api/v1/deliveries/{did}/parts/0",
        f"/api/v1/deliveries/{did}/evidence",
        f"/api/v1/deliveries/{did}/evidence/{eid}",
        f"/api/v1/deliveries/{did}/evidence/{eid}.pdf",
        f"/api/v1/mailboxes/{PRIMER}/outbox",
    ):
        assert await _refusal(server, "acceptor", path) == (403, "permission_required"), path

    # Nina signs the vročilnica with her own certificate
    status, document, receipt_id = await _receipt(server, "acceptor", did)
    assert status == 200 and did.encode() in document
    status, body = await _sign_receipt(server, "acceptor", "acceptor", did, document, receipt_id)
    assert (status, body) == (200, {"accepted": 1})
    events = await server.services.pool.fetch(
        "SELECT event FROM evidence WHERE delivery_id = $1::uuid", did
    )
    assert "ConsignmentAcceptance" in {e["event"] for e in events}

    # accepted: the content is released to readers; to her the delivery is gone, as what
    # was decided is the readers' business
    status, body, _ = await get(server, "acceptor", inbox)
    assert json.loads(body)["deliveries"] == []
    for path in (f"/api/v1/deliveries/{did}", f"/api/v1/deliveries/{did}/parts/0"):
        assert (await get(server, "acceptor", path))[0] == 404, path
    status, data, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}/parts/0")
    assert (status, data) == (200, PDF)
    # nothing was handed over to Nina: the one ContentHandover is Ana's download
    handovers = await server.services.pool.fetchval(
        "SELECT count(*) FROM evidence WHERE delivery_id = $1::uuid AND event = 'ContentHandover'",
        did,
    )
    assert handovers == 1


async def test_r3_2_a_delegate_who_may_neither_read_nor_accept_sees_nothing(
    server: RunningServer,
) -> None:
    status, formal = await send(server, "delegate", DEJAN, [PRIMER], kind="return_receipt")
    assert status == 201, formal
    did = formal["delivery_id"]
    assert await _refusal(server, "sender", f"/api/v1/mailboxes/{PRIMER}/inbox") == (
        403,
        "permission_required",
    )
    for path in (f"/api/v1/deliveries/{did}", f"/api/v1/deliveries/{did}/receipt"):
        assert (await get(server, "sender", path))[0] == 404, path
