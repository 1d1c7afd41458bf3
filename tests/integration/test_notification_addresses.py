"""R3.4 + R5.4 through the running application: a notification address is used only after
the code e-mailed to it is entered; a mail server that is down loses nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.conftest import PkiService
from tests.mailbox_support import legal, natural, open_mailbox
from tests.smtp import SmtpServer
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration
BASE = "/api/v1/mailboxes/primer@vep.si/notification-addresses"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    try:
        yield server
    finally:
        server.stop()


async def _wait(smtp: SmtpServer, count: int) -> bool:
    return await asyncio.to_thread(smtp.wait_received, count, 10)


def _code(smtp: SmtpServer, index: int = -1) -> str:
    body = smtp.received[index].message.get_content()
    match = re.search(r"\b(\d{6})\b", body)
    assert match, body
    return match.group(1)


async def _pending(server: RunningServer) -> int:
    return int(
        await server.services.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND given_up_at IS NULL"
        )
    )


async def test_r3_4_address_confirmed_by_code_from_the_email(
    dev_pki, pki_service: PkiService, database_url: str, smtp: SmtpServer
) -> None:
    smtp.start()
    settings = make_settings(dev_pki, database_url, smtp_port=smtp.port, outbox_poll_seconds=0.05)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        async with server.client("qualified-qscd") as ana:
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert (r.status, await r.json()) == (
                    202,
                    {"email": "board@primer.si", "confirmed": False},
                )
            assert await _wait(smtp, 1)
            [mail] = smtp.received
            assert mail.rcpt_tos == ("board@primer.si",)
            code = _code(smtp)
            text = mail.message.get_content()
            assert "primer@vep.si" in text
            wrong = "000000" if code != "000000" else "111111"
            async with ana.post(f"{BASE}/board@primer.si/confirm", json={"code": wrong}) as r:
                assert (r.status, (await r.json())["errors"]) == (
                    422,
                    [{"field": "code", "reason": "wrong_code"}],
                )
            async with ana.post(f"{BASE}/board@primer.si/confirm", json={"code": code}) as r:
                assert r.status == 204
            async with ana.get("/api/v1/mailboxes/primer@vep.si/settings") as r:
                assert (await r.json())["notification_addresses"] == [
                    {"email": "board@primer.si", "confirmed": True}
                ]
            # added again: it stays confirmed, and no new code goes out
            server.clock.advance(timedelta(minutes=2))
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert (r.status, await r.json()) == (
                    200,
                    {"email": "board@primer.si", "confirmed": True},
                )
            async with ana.get("/api/v1/mailboxes/primer@vep.si/settings") as r:
                assert (await r.json())["notification_addresses"][0]["confirmed"] is True
            assert await server.services.pool.fetchval("SELECT count(*) FROM outbox") == 1
        stored = await server.services.pool.fetchrow(
            "SELECT code_hash, params FROM notification_addresses, outbox"
        )
    assert stored["code_hash"] is None and stored["params"] is None  # no code kept anywhere


async def test_r3_4_code_expires_and_five_wrong_codes_void_it(
    dev_pki, pki_service: PkiService, database_url: str, smtp: SmtpServer
) -> None:
    smtp.start()
    settings = make_settings(dev_pki, database_url, smtp_port=smtp.port, outbox_poll_seconds=0.05)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        async with server.client("qualified-qscd") as ana:
            confirm = f"{BASE}/board@primer.si/confirm"
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert r.status == 202
            assert await _wait(smtp, 1)
            code = _code(smtp)
            server.clock.advance(timedelta(hours=24))
            async with ana.post(confirm, json={"code": code}) as r:
                assert (r.status, (await r.json())["reason"]) == (409, "code_expired")
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:  # a new code
                assert r.status == 202
            assert await _wait(smtp, 2)
            code = _code(smtp)
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(5):
                async with ana.post(confirm, json={"code": wrong}) as r:
                    assert r.status == 422
            async with ana.post(confirm, json={"code": code}) as r:
                assert (r.status, (await r.json())["reason"]) == (409, "code_expired")


async def test_r5_4_mail_server_down_then_up_the_email_arrives_once(
    dev_pki, pki_service: PkiService, database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(dev_pki, database_url, smtp_port=smtp.port, outbox_poll_seconds=0.05)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        async with server.client("qualified-qscd") as ana:
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert r.status == 202  # accepted although the mail server is down
        for _ in range(100):  # the worker tries, fails and schedules a retry
            attempts = await server.services.pool.fetchval("SELECT attempts FROM outbox")
            if attempts:
                break
            await asyncio.sleep(0.05)
        assert attempts == 1
        smtp.start()
        await asyncio.sleep(0.3)
        assert smtp.received == []  # not before the retry is due
        server.clock.advance(timedelta(seconds=30))
        assert await _wait(smtp, 1)
        await asyncio.sleep(0.3)  # more polling passes: still only one
        assert len(smtp.received) == 1
        assert await _pending(server) == 0


async def test_r3_4_parallel_wrong_codes_cannot_pass_five_attempts(
    dev_pki, pki_service: PkiService, database_url: str, smtp: SmtpServer
) -> None:
    """Found in review: attempts were read, compared, then counted; in parallel all
    passed the check. Each attempt is now counted first."""
    smtp.start()
    settings = make_settings(dev_pki, database_url, smtp_port=smtp.port, outbox_poll_seconds=0.05)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        async with server.client("qualified-qscd") as ana:
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert r.status == 202
            assert await _wait(smtp, 1)
            code = _code(smtp)
            wrong = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 13)]

            async def attempt(value: str) -> int:
                url = f"{BASE}/board@primer.si/confirm"
                async with ana.post(url, json={"code": value}) as response:
                    return response.status

            statuses = await asyncio.gather(*(attempt(w) for w in wrong))
        assert statuses.count(422) == 5
        assert statuses.count(409) == 7
        attempts = await server.services.pool.fetchval(
            "SELECT code_attempts FROM notification_addresses"
        )
    assert attempts == 5


async def test_r3_4_a_frozen_mailbox_keeps_its_addresses_as_they_are(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Like every other setting (``update``, ``add``): in a suspended or read-only mailbox
    an address is neither removed nor confirmed (409 ``mailbox_not_active``)."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        pool = server.services.pool
        async with server.client("qualified-qscd") as ana:
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert r.status == 202
            before = await pool.fetch("SELECT * FROM notification_addresses ORDER BY email")
            for state in ("suspended", "readonly"):
                await pool.execute("UPDATE mailboxes SET state = $1", state)
                for method, path, body in (
                    ("POST", f"{BASE}/board@primer.si/confirm", {"code": "000000"}),
                    ("DELETE", f"{BASE}/board@primer.si", None),
                    ("DELETE", f"{BASE}/info@primer.si", None),
                ):
                    async with ana.request(method, path, json=body) as r:
                        problem = await r.json(content_type=None)
                        assert (r.status, problem["reason"]) == (409, "mailbox_not_active")
            after = await pool.fetch("SELECT * FROM notification_addresses ORDER BY email")
            assert after == before


async def test_r3_4_confirmation_codes_to_one_address_are_limited(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Every add sends a new code with five fresh tries: at most one a minute and five in
    24 hours go to one address, from all mailboxes together (429 with Retry-After) — else
    a manager floods a stranger's inbox and guesses without end (found in review)."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        await open_mailbox(server, "delegate", natural("dejan", tax_number="12345679"))

        async def add(who: str, mailbox: str) -> tuple[int, dict[str, object], str | None]:
            path = f"/api/v1/mailboxes/{mailbox}/notification-addresses"
            async with server.client(who) as client:
                async with client.post(path, json={"email": "victim@example.si"}) as r:
                    return r.status, await r.json(), r.headers.get("Retry-After")

        assert (await add("qualified-qscd", "primer@vep.si"))[0] == 202
        status, body, retry = await add("qualified-qscd", "primer@vep.si")  # at once again
        assert (status, body["reason"], retry) == (429, "rate_limited", "60")
        for _ in range(4):
            server.clock.advance(timedelta(minutes=1))
            assert (await add("qualified-qscd", "primer@vep.si"))[0] == 202
        server.clock.advance(timedelta(minutes=1))
        status, _, retry = await add("delegate", "dejan@vep.si")  # the sixth, elsewhere
        assert status == 429 and retry == str(24 * 3600 - 5 * 60)
        server.clock.advance(timedelta(seconds=24 * 3600 - 5 * 60))
        assert (await add("delegate", "dejan@vep.si"))[0] == 202
        sent = await server.services.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE recipient = 'victim@example.si'"
        )
    assert sent == 6


async def test_r3_4_a_removed_address_gets_nothing_still_queued_for_it(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """The confirmation e-mail still queued (the mail server is away) is given up when
    the address is removed, and carries its code no more; another mailbox's e-mail to the
    same address is not touched."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        await open_mailbox(server, "delegate", natural("dejan", tax_number="12345679"))
        async with server.client("qualified-qscd") as ana:
            async with ana.post(BASE, json={"email": "board@primer.si"}) as r:
                assert r.status == 202
        server.clock.advance(timedelta(minutes=1))
        async with server.client("delegate") as dejan:
            path = "/api/v1/mailboxes/dejan@vep.si/notification-addresses"
            async with dejan.post(path, json={"email": "board@primer.si"}) as r:
                assert r.status == 202
        async with server.client("qualified-qscd") as ana:
            async with ana.delete(f"{BASE}/board@primer.si") as r:
                assert r.status == 204
        rows = await server.services.pool.fetch(
            """SELECT params IS NULL AS cleared, given_up_at IS NOT NULL AS given_up, last_error
                 FROM outbox WHERE recipient = 'board@primer.si' ORDER BY id"""
        )
    assert [tuple(r) for r in rows] == [(True, True, "address_removed"), (False, False, None)]
