"""Deemed service tells the sender, in the same transaction as the decision (R5.3).

The day-14/day-15 edge itself is in ``test_deliveries``; here: the notice is queued to
the sender's confirmed addresses, and a decision whose notice cannot be written is not
committed either — as two transactions, a stop between them left the delivery deemed
served, no longer due, and the sender never told."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import pytest

from tests.conftest import PkiService
from tests.integration.test_deliveries import COURT, DEJAN, send
from tests.mailbox_support import open_delivery_world
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        await open_delivery_world(running)
        # two confirmed addresses (the confirmation flow is tested on its own), one not
        await running.services.pool.execute(
            """INSERT INTO notification_addresses (address, email, confirmed_at, added_at)
               VALUES ($1, 'pisarna@primer.si', now(), now()),
                      ($1, 'tajnistvo@primer.si', now(), now()),
                      ($1, 'nepotrjen@primer.si', NULL, now())""",
            COURT,
        )
        yield running


async def sender_notices(server: RunningServer) -> list[tuple[str, str]]:
    rows = await server.services.pool.fetch(
        "SELECT recipient, params FROM outbox WHERE kind = 'mailbox_notice' ORDER BY id"
    )
    return [
        (r["recipient"], r["params"]["notice"]) for r in rows if r["params"]["mailbox"] == COURT
    ]


async def recipient_state(server: RunningServer, did: str) -> tuple[str, int, int]:
    pool = server.services.pool
    state = await pool.fetchval(
        "SELECT state FROM delivery_recipients WHERE delivery_id = $1::uuid", did
    )
    expiries = await pool.fetchval(
        "SELECT count(*) FROM evidence WHERE delivery_id = $1::uuid"
        " AND event = 'AcceptanceRejectionExpiry'",
        did,
    )
    audited = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'delivery.deemed_served'"
    )
    return str(state), int(expiries), int(audited)


async def test_r5_3_the_sender_is_told_once_when_the_delivery_is_deemed_served(
    server: RunningServer,
) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    server.clock.advance(timedelta(days=14, hours=23, minutes=59))
    assert await server.services.acceptance.deemed_service() == 0
    assert await sender_notices(server) == []  # not served yet: nothing to tell
    server.clock.advance(timedelta(minutes=1))
    assert await server.services.acceptance.deemed_service() == 1
    assert await server.services.acceptance.deemed_service() == 0
    told = await sender_notices(server)
    assert sorted(told) == [
        ("pisarna@primer.si", "state_changed"),
        ("tajnistvo@primer.si", "state_changed"),
    ]
    assert await recipient_state(server, sent["delivery_id"]) == ("deemed_served", 1, 1)


async def test_r5_3_no_deemed_service_is_committed_without_the_senders_notice(
    server: RunningServer,
) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    server.clock.advance(timedelta(days=15))
    pool = server.services.pool
    # The notice cannot be written (as if the process stopped at that point).
    await pool.execute(
        "ALTER TABLE outbox ADD CONSTRAINT test_no_notice CHECK (kind <> 'mailbox_notice')"
        " NOT VALID"
    )
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await server.services.acceptance.deemed_service()
        assert await recipient_state(server, did) == ("awaiting_acceptance", 0, 0)
        assert await sender_notices(server) == []
    finally:
        await pool.execute("ALTER TABLE outbox DROP CONSTRAINT test_no_notice")
    # Still due, so the next run serves it and tells the sender.
    assert await server.services.acceptance.deemed_service() == 1
    assert await recipient_state(server, did) == ("deemed_served", 1, 1)
    assert len(await sender_notices(server)) == 2


async def served(server: RunningServer, did: str) -> tuple[str, object, object, object]:
    row = await server.services.pool.fetchrow(
        """SELECT r.state, r.notified_at, r.decided_at, e.event_time
             FROM delivery_recipients r
             LEFT JOIN evidence e ON e.delivery_id = r.delivery_id
                                 AND e.event = 'AcceptanceRejectionExpiry'
            WHERE r.delivery_id = $1::uuid""",
        did,
    )
    return row["state"], row["notified_at"], row["decided_at"], row["event_time"]


async def test_r5_3_service_is_deemed_when_the_15_days_end_not_when_a_run_finds_it(
    server: RunningServer,
) -> None:
    """ZPP 141.a: service is deemed done "z dnem poteka tega roka". The daily run that finds
    the delivery a day and three hours later records the moment the 15 days ended as the
    evidence's EventTime and the decision's time (R8.1 and a court's deadlines count from
    it); before, it recorded its own run time."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    server.clock.advance(timedelta(days=16, hours=3))
    assert await server.services.acceptance.deemed_service() == 1
    state, notified, decided, event_time = await served(server, sent["delivery_id"])
    assert state == "deemed_served"
    assert decided == event_time == notified + timedelta(days=15)


async def test_r5_3_after_15_days_the_recipient_finds_it_served_before_any_run(
    server: RunningServer,
) -> None:
    """A recipient who comes to accept a minute after the 15 days, before the daily run,
    is not issued a vročilnica for it (which would record an acceptance after service was
    deemed done): 409 ``not_waiting``, the delivery is deemed served as of day 15, the
    sender told, and the content released."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    server.clock.advance(timedelta(days=15, minutes=1))
    async with server.client("delegate") as client:
        async with client.get(f"/api/v1/deliveries/{did}/receipt") as response:
            assert response.status == 409
            assert (await response.json())["reason"] == "not_waiting"
        async with client.get(f"/api/v1/deliveries/{did}/parts/0") as response:
            assert response.status == 200
    state, notified, decided, _ = await served(server, did)
    assert state == "deemed_served" and decided == notified + timedelta(days=15)
    assert len(await sender_notices(server)) == 2
    assert await server.services.acceptance.deemed_service() == 0


async def test_r5_3_the_15_days_end_at_the_microsecond_of_notification(
    server: RunningServer,
) -> None:
    """The edge itself: a microsecond before notification + 15 days the recipient is still
    issued a vročilnica; at that moment the delivery is served (409 ``not_waiting``) and
    the decision carries exactly that moment."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    _, notified, _, _ = await served(server, did)
    assert isinstance(notified, datetime)
    end = notified + timedelta(days=15)
    async with server.client("delegate") as client:
        server.clock.set(end - timedelta(microseconds=1))
        async with client.get(f"/api/v1/deliveries/{did}/receipt") as response:
            assert response.status == 200
        assert (await served(server, did))[0] == "awaiting_acceptance"
        server.clock.set(end)
        async with client.get(f"/api/v1/deliveries/{did}/receipt") as response:
            assert response.status == 409
            assert (await response.json())["reason"] == "not_waiting"
    state, _, decided, event_time = await served(server, did)
    assert state == "deemed_served" and decided == event_time == end
