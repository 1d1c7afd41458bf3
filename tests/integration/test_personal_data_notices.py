"""R8.6: the e-mail address of a finished notice is forgotten once the personal-data period
(10 years) has passed since the notice finished.

A finished notice keeps no parameters (they may hold a code), so its address was the last
personal datum in it, kept for ever before: nothing links it to a subscriber whose
contract's end it could wait for, so it goes by its own age. The notices here are real:
queued by a delivery, sent or refused (550, given up) by a real SMTP server.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from server.services.lifecycle import add_years
from tests.conftest import PkiService
from tests.integration.test_deliveries import COURT, DEJAN, send
from tests.integration.test_lifecycle import run_job
from tests.mailbox_support import open_delivery_world
from tests.smtp import SmtpServer
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


async def settled(server: RunningServer) -> dict[int, tuple[str, datetime]]:
    """Every notice once none is pending: id → (address, when it finished)."""
    pool = server.services.pool
    for _ in range(200):
        pending = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND given_up_at IS NULL"
        )
        if pending == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the outbox did not drain")
    rows = await pool.fetch(
        "SELECT id, recipient, coalesce(sent_at, given_up_at) AS finished FROM outbox"
    )
    return {r["id"]: (r["recipient"], r["finished"]) for r in rows}


async def test_r8_6_a_finished_notice_forgets_its_address_ten_years_after(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    smtp = SmtpServer()
    smtp.reject.add("zavrnjen@example.si")  # refused for good, so given up
    smtp.start()
    try:
        settings = make_settings(
            dev_pki, database_url, smtp_port=smtp.port, outbox_poll_seconds=0.05
        )
        async with running_server(settings, dev_pki) as server:
            await open_delivery_world(server)
            # confirmed addresses (the confirmation flow is tested on its own)
            await server.services.pool.execute(
                """INSERT INTO notification_addresses (address, email, confirmed_at, added_at)
                   VALUES ($1, 'dejan@example.si', now(), now()),
                          ($1, 'zavrnjen@example.si', now(), now())""",
                DEJAN,
            )
            first = server.clock.now()
            assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
            early = await settled(server)
            server.clock.advance(timedelta(days=1))
            assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
            notices = await settled(server)
            late = {i: v for i, v in notices.items() if i not in early}
            outcomes = await server.services.pool.fetch(
                "SELECT sent_at IS NOT NULL AS sent FROM outbox WHERE id = ANY($1::bigint[])",
                list(early),
            )
            assert {r["sent"] for r in outcomes} == {True, False}  # sent and given up
            assert early and late and {v[1] for v in early.values()} == {first}

            async def kept() -> dict[int, str]:
                rows = await server.services.pool.fetch("SELECT id, recipient FROM outbox")
                return {r["id"]: r["recipient"] for r in rows}

            addresses = {i: v[0] for i, v in notices.items()}
            server.clock.set(add_years(first, 10) - timedelta(microseconds=1))
            assert await run_job(server, "personal-data") == 0
            assert await kept() == addresses
            server.clock.set(add_years(first, 10))
            assert await run_job(server, "personal-data") == len(early)
            assert await kept() == {
                i: "[removed]" if i in early else address for i, address in addresses.items()
            }
            assert await run_job(server, "personal-data") == 0
            audited = await server.services.pool.fetch(
                """SELECT details FROM audit_events
                    WHERE action = 'outbox.addresses_removed' ORDER BY seq"""
            )
            assert [a["details"] for a in audited] == [{"notices": len(early)}]
            server.clock.set(add_years(first + timedelta(days=1), 10))
            assert await run_job(server, "personal-data") == len(late)
            assert set((await kept()).values()) == {"[removed]"}
            # what the notice was, and when it went, stays (R8.6: logs 7 years at least)
            finished = await settled(server)
            assert {i: v[1] for i, v in finished.items()} == {i: v[1] for i, v in notices.items()}
    finally:
        smtp.stop()
