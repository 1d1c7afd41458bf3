"""R5.4 (and the R3.4 code's transport): e-mail notifications through the outbox.

A real aiosmtpd server on a real socket, real PostgreSQL, time moved by a ManualClock:
a rolled-back event announces nothing, a down mail server loses nothing and is retried
after 30 s, two workers never send the same row, a 5xx or the attempt limit gives up, and
the confirmation code is neither logged nor kept once sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from server.clock import ManualClock
from server.logs import JsonFormatter
from server.notify import templates
from server.notify.notifier import SmtpNotifier
from server.notify.worker import OutboxWorker, backoff
from server.store.db import create_pool
from server.store.outbox import OutboxRow, OutboxStore
from tests.smtp import SmtpServer

pytestmark = pytest.mark.integration

SENDER = "VEP <noreply@vep.si>"
MAILBOX = "ana.novak@vep.si"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


def make_worker(
    pool: asyncpg.Pool, smtp: SmtpServer, clock: ManualClock, max_attempts: int = 12
) -> OutboxWorker:
    notifier = SmtpNotifier(smtp.host, smtp.port, SENDER, starttls=False, timeout=5.0)
    return OutboxWorker(OutboxStore(pool), notifier, clock, SENDER, max_attempts=max_attempts)


async def enqueue(
    pool: asyncpg.Pool, to: str, kind: str, params: dict[str, str], at: datetime
) -> int:
    """As a service would: in the transaction of the event that causes the notification."""
    async with pool.acquire() as conn, conn.transaction():
        return await OutboxStore(pool).enqueue(conn, to=to, kind=kind, params=params, at=at)


async def row(pool: asyncpg.Pool, outbox_id: int) -> OutboxRow:
    found = await OutboxStore(pool).get(outbox_id)
    assert found is not None
    return found


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    delays = [backoff(n).total_seconds() for n in range(1, 11)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_every_kind_renders_slovenian_then_english() -> None:
    cases = {
        "delivery_waiting": {"mailbox": MAILBOX},
        "email_confirmation": {"mailbox": MAILBOX, "code": "Q7X4-92KD"},
        "mailbox_notice": {"mailbox": MAILBOX, "notice": "state_changed"},
        "wind_down": {
            "mailbox": MAILBOX,
            "formal_until": "2027-01-05 12:00 UTC",
            "access_until": "2027-01-20 12:00 UTC",
        },
    }
    ministry = {
        "provider": "VEP (vep.si)",
        "effective_at": "2026-12-06 12:00 UTC",
        "formal_until": "2027-01-05 12:00 UTC",
        "access_until": "2027-01-20 12:00 UTC",
        "mailboxes": "3",
    }
    assert set(cases) | {"wind_down_ministry"} == set(templates.PARAMS)
    for kind, params in cases.items():
        subject, body = templates.render(kind, params)
        assert " / " in subject
        assert body.index("Pozdravljeni") < body.index("Hello")
        assert body.count(MAILBOX) == 2  # once per language
    subject, body = templates.render("wind_down_ministry", ministry)
    assert " / " in subject and body.index("Spoštovani") < body.index("Dear")
    assert body.count("2027-01-20 12:00 UTC") == 2
    with pytest.raises(templates.TemplateError, match="UnexpectedParams"):
        templates.render("delivery_waiting", {"mailbox": MAILBOX, "subject": "Odločba"})
    with pytest.raises(templates.TemplateError, match="BadParam"):
        templates.render("delivery_waiting", {"mailbox": "a@vep.si\nPriloga: odločba"})
    with pytest.raises(templates.TemplateError, match="UnknownNotice"):
        templates.render("mailbox_notice", {"mailbox": MAILBOX, "notice": "Vaša odločba"})


async def test_r5_4_rolled_back_event_sends_nothing(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    clock = ManualClock(START)
    store = OutboxStore(pool)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store.enqueue(
                    conn,
                    to="ana@example.si",
                    kind="delivery_waiting",
                    params={"mailbox": MAILBOX},
                    at=clock.now(),
                )
                raise RuntimeError("the delivery failed after the notification was queued")
    worker = make_worker(pool, smtp, clock)
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert smtp.received == []


async def test_r5_4_one_message_in_slovenian_then_english(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    clock = ManualClock(START)
    outbox_id = await enqueue(
        pool, "ana@example.si", "delivery_waiting", {"mailbox": MAILBOX}, clock.now()
    )
    worker = make_worker(pool, smtp, clock)
    assert await worker.run_once() == 1

    [received] = smtp.received
    assert received.mail_from == "noreply@vep.si"
    assert received.rcpt_tos == ("ana@example.si",)
    message = received.message
    subject, body = templates.render("delivery_waiting", {"mailbox": MAILBOX})
    assert message["From"] == SENDER
    assert message["To"] == "ana@example.si"
    assert message["Subject"] == subject
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "sl, en"
    assert not message.is_multipart()  # no attachment, no HTML part
    # Exactly the template's text: the mailbox address and nothing else from the event.
    assert message.get_content().replace("\r\n", "\n") == body  # CRLF on the wire
    assert body.index("v vašem varnem elektronskem predalu") < body.index("An item awaits")

    stored = await row(pool, outbox_id)
    assert stored.sent_at == clock.now()
    assert stored.params is None
    assert stored.attempts == 1
    assert stored.locked_until is None

    clock.advance(timedelta(hours=2))
    assert await worker.run_once() == 0
    assert len(smtp.received) == 1


async def test_r5_4_params_beyond_the_template_are_never_sent(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    clock = ManualClock(START)
    params = {"mailbox": MAILBOX, "subject": "Odločba o dohodnini"}
    outbox_id = await enqueue(pool, "ana@example.si", "delivery_waiting", params, clock.now())
    assert await make_worker(pool, smtp, clock).run_once() == 1
    assert smtp.received == []
    stored = await row(pool, outbox_id)
    assert stored.given_up_at == clock.now()
    assert stored.last_error == "UnexpectedParams"
    assert stored.params is None


async def test_r5_4_down_mail_server_loses_nothing_and_is_retried_after_30_s(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    clock = ManualClock(START)
    smtp.stop()  # nothing listens on its port now
    outbox_id = await enqueue(
        pool, "ana@example.si", "delivery_waiting", {"mailbox": MAILBOX}, clock.now()
    )
    worker = make_worker(pool, smtp, clock)
    assert await worker.run_once() == 1

    stored = await row(pool, outbox_id)
    assert stored.sent_at is None and stored.given_up_at is None
    assert stored.attempts == 1
    assert stored.last_error == "SMTPConnectError"
    assert stored.next_attempt_at == START + timedelta(seconds=30)
    assert stored.params == {"mailbox": MAILBOX}
    assert stored.locked_until is None

    smtp.start()
    assert await worker.run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=29))
    assert await worker.run_once() == 0
    assert smtp.received == []

    clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 1
    assert len(smtp.received) == 1
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        assert await worker.run_once() == 0
    assert len(smtp.received) == 1
    stored = await row(pool, outbox_id)
    assert stored.sent_at == START + timedelta(seconds=30)
    assert stored.attempts == 2
    assert stored.params is None


async def test_r5_4_two_workers_never_send_the_same_row(
    database_url: str, pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    """Two nodes: two pools, two workers, one outbox; every message arrives exactly once."""
    clock = ManualClock(START)
    recipients = [f"person{i}@example.si" for i in range(25)]
    for to in recipients:
        await enqueue(pool, to, "delivery_waiting", {"mailbox": MAILBOX}, clock.now())
    other_pool = await create_pool(database_url)
    try:
        first = make_worker(pool, smtp, clock)
        second = make_worker(other_pool, smtp, clock)
        tried = 0
        while True:
            counts = await asyncio.gather(first.run_once(), second.run_once())
            if sum(counts) == 0:
                break
            tried += sum(counts)
    finally:
        await other_pool.close()
    assert tried == len(recipients)
    arrived = sorted(to for received in smtp.received for to in received.rcpt_tos)
    assert arrived == sorted(recipients)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_r5_4_concurrent_claims_are_disjoint(database_url: str, pool: asyncpg.Pool) -> None:
    clock = ManualClock(START)
    ids = {
        await enqueue(pool, f"p{i}@example.si", "delivery_waiting", {"mailbox": MAILBOX}, START)
        for i in range(40)
    }
    pools = [pool] + [await create_pool(database_url) for _ in range(3)]
    try:
        claims = await asyncio.gather(
            *(
                OutboxStore(p).claim_due(clock.now(), 15, timedelta(minutes=5))
                for p in pools
                for _ in range(2)
            )
        )
    finally:
        for extra in pools[1:]:
            await extra.close()
    claimed = [m.id for claim in claims for m in claim]
    assert len(claimed) == len(set(claimed)) == len(ids)
    assert set(claimed) == ids
    # Leased: nobody gets them again until the lease runs out.
    store = OutboxStore(pool)
    assert (
        await store.claim_due(clock.now() + timedelta(minutes=4), 100, timedelta(minutes=5)) == []
    )
    again = await store.claim_due(clock.now() + timedelta(minutes=5), 100, timedelta(minutes=5))
    assert {m.id for m in again} == ids
    assert {m.attempts for m in again} == {2}


async def test_r5_4_permanent_rejection_gives_up_and_clears_params(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    clock = ManualClock(START)
    smtp.reject.add("gone@example.si")
    outbox_id = await enqueue(
        pool,
        "gone@example.si",
        "email_confirmation",
        {"mailbox": MAILBOX, "code": "Q7X4-92KD"},
        clock.now(),
    )
    worker = make_worker(pool, smtp, clock)
    assert await worker.run_once() == 1
    stored = await row(pool, outbox_id)
    assert stored.given_up_at == clock.now()
    assert stored.sent_at is None
    assert stored.params is None
    assert stored.last_error == "SMTPRecipientsRefused 550"  # no server text, no address
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0
    assert smtp.received == []


async def test_r5_4_gives_up_after_max_attempts(pool: asyncpg.Pool, smtp: SmtpServer) -> None:
    clock = ManualClock(START)
    smtp.stop()
    outbox_id = await enqueue(
        pool, "ana@example.si", "delivery_waiting", {"mailbox": MAILBOX}, clock.now()
    )
    worker = make_worker(pool, smtp, clock, max_attempts=3)
    assert await worker.run_once() == 1
    assert (await row(pool, outbox_id)).next_attempt_at == START + timedelta(seconds=30)
    clock.advance(timedelta(seconds=30))
    assert await worker.run_once() == 1
    assert (await row(pool, outbox_id)).next_attempt_at == clock.now() + timedelta(seconds=60)
    clock.advance(timedelta(seconds=60))
    assert await worker.run_once() == 1

    stored = await row(pool, outbox_id)
    assert stored.attempts == 3
    assert stored.given_up_at == clock.now()
    assert stored.last_error == "SMTPConnectError"
    assert stored.params is None
    smtp.start()
    clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0
    assert smtp.received == []


async def test_r3_4_confirmation_code_is_never_logged_and_not_kept(
    pool: asyncpg.Pool, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock(START)
    code, to = "Q7X4-92KD", "ana.confirm@example.si"
    smtp.stop()
    outbox_id = await enqueue(
        pool, to, "email_confirmation", {"mailbox": MAILBOX, "code": code}, clock.now()
    )
    worker = make_worker(pool, smtp, clock)
    assert await worker.run_once() == 1  # fails: logged with the server down
    smtp.start()
    clock.advance(timedelta(seconds=30))
    assert await worker.run_once() == 1

    [received] = smtp.received
    assert code in received.message.get_content()  # it really went out
    stored = await row(pool, outbox_id)
    assert stored.sent_at is not None
    assert stored.params is None
    assert code not in await pool.fetchval("SELECT string_agg(outbox::text, '') FROM outbox")

    formatter = JsonFormatter()
    # Our records, as the JSON log would print them (with every extra field); the test
    # SMTP server's own log ("mail.log") stands for the outside world.
    ours = [r for r in caplog.records if not r.name.startswith("mail.")]
    assert any(r.name == "server.notify.worker" for r in ours)
    for record in ours:
        line = formatter.format(record)
        assert code not in line
        assert to not in line
        assert MAILBOX not in line


async def test_r5_4_a_relay_down_for_a_weekend_loses_no_notice(
    pool: asyncpg.Pool, smtp: SmtpServer
) -> None:
    """Found in review: 12 tries, backoff capped at an hour, were spent in ~5 hours, so a
    relay down over a weekend gave up every notice (R8.5's wind-down notices too, recorded
    as sent once). A notice is given up after the attempts *and* the hours."""
    clock = ManualClock(START)
    smtp.stop()
    notifier = SmtpNotifier(smtp.host, smtp.port, SENDER, starttls=False, timeout=5.0)
    store = OutboxStore(pool)
    worker = OutboxWorker(
        store, notifier, clock, SENDER, max_attempts=12, keep_trying=timedelta(hours=72)
    )
    weekend = await enqueue(pool, "ana@example.si", "delivery_waiting", {"mailbox": MAILBOX}, START)

    async def tries_until(moment: datetime) -> None:
        for _ in range(200):
            current = await row(pool, weekend)
            if current.next_attempt_at > moment or current.sent_at or current.given_up_at:
                return
            clock.set(current.next_attempt_at)
            await worker.run_once()

    await tries_until(START + timedelta(hours=60))  # relay down: far beyond 12 tries
    assert (await row(pool, weekend)).attempts > 12
    assert (await row(pool, weekend)).given_up_at is None
    smtp.start()
    await tries_until(START + timedelta(hours=61))
    assert [m.rcpt_tos for m in smtp.received] == [("ana@example.si",)]
    assert (await row(pool, weekend)).sent_at is not None

    smtp.stop()  # down for longer than the hours: given up once both are spent
    later = clock.now()
    lost = await enqueue(pool, "bor@example.si", "delivery_waiting", {"mailbox": MAILBOX}, later)
    for _ in range(200):  # hourly tries: ~80 in 72 hours
        if (await row(pool, lost)).given_up_at is not None:
            break
        clock.set((await row(pool, lost)).next_attempt_at)
        await worker.run_once()
    assert (await row(pool, lost)).given_up_at is not None
    assert later + timedelta(hours=72) <= clock.now() <= later + timedelta(hours=73)
