"""The lifecycle rules at their edges, by moving the clock (R2.3, R8.1, R8.3, R8.4, R8.6,
R1.3): each job is run as the scheduler runs it (through the job runner)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from server.evidence import xml as evidence_xml
from server.http.context import JOBS
from server.registry.business import FixtureRegister
from server.services.lifecycle import LifecycleService, add_months, add_years
from server.settings import Settings
from server.store.lifecycle import LifecycleStore
from server.tools.sign import async_sign_cades_detached
from tests.cli_support import vep, vep_env
from tests.conftest import PkiService
from tests.integration.test_deliveries import (
    BOJAN,
    COURT,
    DEJAN,
    PDF,
    get,
    openssl_ts_verify,
    send,
    xmlsec_verify,
)
from tests.mailbox_support import add_delegate, legal, natural, open_mailbox
from tests.support import RunningServer

pytestmark = pytest.mark.integration

MOJCA = "mojca@vep.si"  # revocable-mailbox: her only certificate gets revoked


async def run_job(server: RunningServer, name: str) -> int:
    result = await server.app[JOBS].run(name, manual=True)
    assert result.status == "ran", result
    return result.items


async def state(server: RunningServer, address: str) -> str:
    return str(
        await server.services.pool.fetchval(
            "SELECT state FROM mailboxes WHERE address = $1", address
        )
    )


async def notices(server: RunningServer, address: str) -> list[str]:
    rows = await server.services.pool.fetch(
        "SELECT params FROM outbox WHERE kind = 'mailbox_notice' ORDER BY id"
    )
    return [r["params"]["notice"] for r in rows if r["params"]["mailbox"] == address]


async def test_r2_3_temporary_mailbox_suspended_on_day_8_not_day_7(server: RunningServer) -> None:
    opened = await open_mailbox(
        server,
        "newcomer",
        legal(
            "zupan",
            registration_number="4567897",
            tax_number="45678901",
            name="Zupan trgovina d.o.o.",
        ),
    )
    assert opened["state"] == "temporary"
    waiting = await open_mailbox(
        server,
        "newcomer",
        legal(
            "kranjc",
            registration_number="3456781",
            tax_number="34567895",
            name="Kranjc in partnerji, odvetniška družba o.p., d.o.o.",
        ),
    )
    await server.services.operator.contract_received(waiting["address"], "maja")
    server.clock.advance(timedelta(days=7, hours=23, minutes=59, seconds=59))
    assert await run_job(server, "temporary-mailboxes") == 0
    assert await state(server, "zupan@vep.si") == "temporary"
    server.clock.advance(timedelta(seconds=1))
    assert await run_job(server, "temporary-mailboxes") == 1
    assert await state(server, "zupan@vep.si") == "suspended"
    assert await state(server, waiting["address"]) == "active"  # its contract arrived
    assert await run_job(server, "temporary-mailboxes") == 0  # nothing twice
    assert await notices(server, "zupan@vep.si") == ["suspended_no_contract"]
    actor = await server.services.pool.fetchval(
        "SELECT actor FROM mailbox_state_changes WHERE address = 'zupan@vep.si' "
        "ORDER BY change_id DESC LIMIT 1"
    )
    assert actor == "system:temporary-mailboxes"

    # found in review: nothing led out of suspension, and the dead mailbox was billed
    # each month until it closed for non-payment; now it is not billed, and the paper
    # contract, when it comes late, reopens it
    async def invoiced(address: str) -> int:
        return int(
            await server.services.pool.fetchval(
                """SELECT count(*) FROM invoices i JOIN mailboxes m USING (subscriber_id)
                    WHERE m.address = $1""",
                address,
            )
        )

    await run_job(server, "billing")
    assert (await invoiced("zupan@vep.si"), await invoiced(waiting["address"])) == (0, 1)
    assert await server.services.operator.contract_received("zupan@vep.si", "maja") == "active"
    await run_job(server, "billing")
    assert await invoiced("zupan@vep.si") == 1


async def test_r8_1_retention_purges_a_day_after_not_a_day_before(
    server: RunningServer, tmp_path: Path
) -> None:
    sent_at = server.clock.now()
    # one part kept sealed in its row, one large enough to be a file (R5.5): both go
    large = PDF * (Settings.content_inline_max_bytes // len(PDF) + 1)
    files = [("sodba.pdf", PDF, "application/pdf"), ("spis.pdf", large, "application/pdf")]
    status, sent = await send(server, "qualified-qscd", COURT, [DEJAN], files=files)
    assert status == 201
    did = sent["delivery_id"]
    # a return-receipt delivery nobody decided on is not "received": never purged
    _, formal = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    # one refused is received (decided), and purged too — its content never released
    _, refused = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    async with server.client("delegate") as dejan:
        async with dejan.post(f"/api/v1/deliveries/{refused['delivery_id']}/reject") as r:
            assert r.status == 200
    pool = server.services.pool
    parts_sql = """SELECT locator, inline_content IS NOT NULL AS inline FROM delivery_parts
                    WHERE delivery_id = $1::uuid ORDER BY part_no"""
    parts = [tuple(r) for r in await pool.fetch(parts_sql, did)]
    assert [inline for _, inline in parts] == [True, False]
    locator = parts[1][0]
    content = server.services.settings.data_dir / "content"
    assert list(content.rglob(locator))

    server.clock.set(add_months(sent_at, 3) - timedelta(days=1))
    assert await run_job(server, "retention") == 0
    assert (await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0"))[:2] == (200, PDF)
    assert (await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/1"))[:2] == (200, large)

    server.clock.set(add_months(sent_at, 3) + timedelta(days=1))
    assert await run_job(server, "retention") == 2
    assert await run_job(server, "retention") == 0
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0")
    assert status == 403 and json.loads(body)["reason"] == "purged"
    assert not list(content.rglob(locator))
    assert [tuple(r) for r in await pool.fetch(parts_sql, did)] == [
        (parts[0][0], False),
        (locator, False),
    ]
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/1")
    assert status == 403 and json.loads(body)["reason"] == "purged"
    # the message is content too (found in review: it outlived the purge, still shown)
    for who in ("delegate", "qualified-qscd"):  # recipient and sender
        status, body, _ = await get(server, who, f"/api/v1/deliveries/{did}")
        view = json.loads(body)
        assert status == 200 and view["content_purged_at"] is not None
        assert "message" not in view and "parts" not in view, who
    stored = "SELECT message FROM deliveries WHERE delivery_id = $1::uuid"
    assert await pool.fetchval(stored, did) == ""
    assert await pool.fetchval(stored, formal["delivery_id"]), (
        "the undecided delivery keeps its message"
    )
    assert await pool.fetchval(
        "SELECT content_purged_at IS NULL FROM deliveries WHERE delivery_id = $1::uuid",
        formal["delivery_id"],
    )
    # crypto-erasure: the wrapped data key is gone with the content, the other's stays
    key_sql = "SELECT octet_length(wrapped_key) FROM deliveries WHERE delivery_id = $1::uuid"
    assert await pool.fetchval(key_sql, did) == 0
    assert await pool.fetchval(key_sql, formal["delivery_id"]) > 0
    # the evidence outlives the content, and the disposal has its own sealed record
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/evidence")
    events = [e["event"] for e in json.loads(body)["evidence"]]
    assert "ContentHandover" in events and events[-1] == "ContentDisposition"
    eid = json.loads(body)["evidence"][-1]["evidence_id"]
    status, xml, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}/evidence/{eid}")
    assert status == 200
    evidence_xml.validate(etree.fromstring(xml))
    assert b"ContentDisposition" in xml and b"retention" in xml
    assert xmlsec_verify(server, xml, tmp_path).returncode == 0
    assert openssl_ts_verify(server, xml, tmp_path).returncode == 0
    # it names what was released; the refused delivery's names no part (R5.3)
    disposal = "SELECT xml FROM evidence WHERE delivery_id = $1::uuid AND event = $2"
    assert b"<Name>sodba.pdf</Name>" in xml
    withheld = bytes(await pool.fetchval(disposal, refused["delivery_id"], "ContentDisposition"))
    assert b"sodba.pdf" not in withheld and b"<ContentPart><MediaType>" in withheld


async def test_r8_1_a_late_retention_run_records_the_disposal_when_it_happens(
    server: RunningServer,
) -> None:
    """Found in review: a scheduled run judges its rules as of its slot (02:10), and it
    also sealed the disposal at 02:10 when it ran — caught up by a node that restarted —
    at 23:00, after a handover at 22:00: evidence that the content was destroyed before it
    was handed over. What is due is still judged at the slot; the disposal is recorded
    when it happens."""
    from datetime import UTC, datetime

    from server.http.context import JOBS

    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    did = sent["delivery_id"]
    day = add_months(server.clock.now(), 3) + timedelta(days=2)
    server.clock.set(datetime(day.year, day.month, day.day, 22, 0, tzinfo=UTC))
    assert (await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0"))[0] == 200
    late = datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC)
    server.clock.set(late)
    result = await server.app[JOBS].run("retention")  # scheduled: judged at today's slot
    assert result.status == "ran" and result.items == 1 and result.slot < late
    rows = await server.services.pool.fetch(
        "SELECT event, event_time FROM evidence WHERE delivery_id = $1::uuid", did
    )
    times = {r["event"]: r["event_time"] for r in rows}
    assert times["ContentDisposition"] == late > times["ContentHandover"]
    purged = await server.services.pool.fetchval(
        "SELECT content_purged_at FROM deliveries WHERE delivery_id = $1::uuid", did
    )
    assert purged == late


async def test_r8_1_content_deleted_early_only_on_request_after_receipt(
    server: RunningServer,
) -> None:
    """R8.1 "deletion before that only on the subscriber's explicit request": a party's
    request takes the content out of its own mailbox only. The recipient's deletion left
    the sender's copy as it was (before, it destroyed it for the court too); the copy is
    disposed of, with its sealed ContentDisposition, when the last party asks."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    did = sent["delivery_id"]
    path = f"/api/v1/deliveries/{did}/content"
    part = f"/api/v1/deliveries/{did}/parts/0"
    pool = server.services.pool

    async def delete(who: str) -> tuple[int, dict[str, object]]:
        async with server.client(who) as client, client.delete(path) as r:
            return r.status, await r.json(content_type=None)

    async def reason(who: str) -> tuple[int, object]:
        status, body, _ = await get(server, who, part)
        return status, json.loads(body)["reason"] if status != 200 else body

    status, body = await delete("qualified")  # Bojan: no party to it
    assert (status, body["reason"]) == (404, "not_found")
    # a member of the sender's mailbox with read but not manage may not ask for it
    assert (await add_delegate(server, "qualified-qscd", COURT, "reader", ["read"]))[0] == 201
    status, body = await delete("reader")
    assert (status, body["reason"]) == (404, "not_found")
    status, body = await delete("delegate")  # Dejan has not downloaded it yet
    assert (status, body["reason"]) == (409, "not_received")
    status, body = await delete("qualified-qscd")  # nor may the court before he has it
    assert (status, body["reason"]) == (409, "not_received")
    assert (await get(server, "delegate", part))[0] == 200

    status, body = await delete("delegate")
    assert status == 200
    assert body["mailbox"] == DEJAN and body["content_deleted_at"]
    assert body["content_purged_at"] is None
    assert await reason("delegate") == (403, "deleted")
    status, raw, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}")
    shown = json.loads(raw)
    assert status == 200 and "parts" not in shown and "message" not in shown
    assert shown["content_deleted_at"] == body["content_deleted_at"]
    status, again = await delete("delegate")
    assert (status, again["reason"]) == (409, "deleted")
    # the court's copy is untouched: nobody of the court asked
    assert await reason("qualified-qscd") == (200, PDF)
    status, raw, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}")
    assert json.loads(raw)["content_deleted_at"] is None and json.loads(raw)["parts"]
    assert await pool.fetchval(
        "SELECT content_purged_at IS NULL FROM deliveries WHERE delivery_id = $1::uuid", did
    )
    assert "ContentDisposition" not in [
        r["event"]
        for r in await pool.fetch("SELECT event FROM evidence WHERE delivery_id = $1::uuid", did)
    ]

    status, body = await delete("qualified-qscd")  # the last party: the copy goes
    assert status == 200
    assert body["mailbox"] == COURT and body["content_purged_at"] == body["content_deleted_at"]
    assert await reason("qualified-qscd") == (403, "purged")
    status, body = await delete("qualified-qscd")
    assert (status, body["reason"]) == (409, "purged")
    row = await pool.fetchrow(
        "SELECT content_purge_reason, content_purge_requested_by FROM deliveries "
        "WHERE delivery_id = $1::uuid",
        did,
    )
    assert row["content_purge_reason"] == "subscriber_request"
    assert row["content_purge_requested_by"] is not None
    audited = await pool.fetch(
        """SELECT action, details->>'mailbox' AS mailbox FROM audit_events
            WHERE action IN ('delivery.content_deleted', 'delivery.content_purged')
            ORDER BY seq"""
    )
    assert [(r["action"], r["mailbox"]) for r in audited] == [
        ("delivery.content_deleted", DEJAN),
        ("delivery.content_deleted", COURT),
        ("delivery.content_purged", None),
    ]
    events = await pool.fetch(
        "SELECT recipient_address FROM evidence WHERE delivery_id = $1::uuid "
        "AND event = 'ContentDisposition'",
        did,
    )
    assert [r["recipient_address"] for r in events] == [DEJAN]


async def test_r8_1_the_last_two_parties_asking_at_once_dispose_of_it_once(
    server: RunningServer,
) -> None:
    """Two recipients' last requests racing: the delivery row is locked for each, so
    exactly one of them finds nobody left and disposes of the content, once."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN, BOJAN])
    did = sent["delivery_id"]
    for who in ("delegate", "qualified"):
        assert (await get(server, who, f"/api/v1/deliveries/{did}/parts/0"))[0] == 200

    async def delete(who: str) -> tuple[int, dict[str, object]]:
        async with (
            server.client(who) as client,
            client.delete(f"/api/v1/deliveries/{did}/content") as r,
        ):
            return r.status, await r.json(content_type=None)

    assert (await delete("qualified-qscd"))[0] == 200
    answers = await asyncio.gather(delete("delegate"), delete("qualified"))
    assert [status for status, _ in answers] == [200, 200]
    assert sorted(body["mailbox"] for _, body in answers) == sorted([DEJAN, BOJAN])
    assert [body["content_purged_at"] is not None for _, body in answers].count(True) == 1
    pool = server.services.pool
    assert (
        await pool.fetchval(
            """SELECT count(*) FROM audit_events WHERE action = 'delivery.content_purged'
                AND details->>'delivery_id' = $1""",
            did,
        )
        == 1
    )
    assert (
        await pool.fetchval(
            """SELECT count(*) FROM evidence WHERE delivery_id = $1::uuid
                AND event = 'ContentDisposition'""",
            did,
        )
        == 2
    )


async def test_r8_3_no_valid_certificate_notice_then_closed_after_30_days(
    server: RunningServer, pki_service: PkiService
) -> None:
    await open_mailbox(server, "revocable-mailbox", natural("mojca", tax_number="30000009"))
    assert await run_job(server, "certificates") == 0  # everybody has a valid one
    pki_service.revoke("revocable-mailbox")
    noticed_at = server.clock.now()
    assert await run_job(server, "certificates") == 1
    assert await notices(server, MOJCA) == ["certificate_missing"]
    assert await run_job(server, "certificates") == 0  # told once
    # found in review: a run while revocation data are away counted the certificate as
    # valid, cleared the notice and restarted the 30 days — now it changes nothing
    server.clock.set(noticed_at + timedelta(days=20))
    pki_service.stop()
    try:
        assert await run_job(server, "certificates") == 0
    finally:
        pki_service.start()
    notice = "SELECT certificate_notice_at FROM mailboxes WHERE address = $1"
    assert await server.services.pool.fetchval(notice, MOJCA) == noticed_at
    server.clock.set(noticed_at + timedelta(days=29, hours=23, minutes=59))
    assert await run_job(server, "certificates") == 0
    assert await state(server, MOJCA) == "active"
    server.clock.set(noticed_at + timedelta(days=30))
    assert await run_job(server, "certificates") == 1
    assert await state(server, MOJCA) == "closed"
    assert await notices(server, MOJCA) == ["certificate_missing", "closed"]
    row = await server.services.pool.fetchrow(
        """SELECT m.closure_reason, s.terminated_at FROM mailboxes m
             JOIN subscribers s USING (subscriber_id) WHERE m.address = $1""",
        MOJCA,
    )
    assert row["closure_reason"] == "no_certificate" and row["terminated_at"] is not None
    for other in (COURT, DEJAN, BOJAN):
        assert await state(server, other) == "active"


async def test_r8_3_legal_entity_gone_from_the_register_is_closed(
    server: RunningServer, tmp_path: Path
) -> None:
    fixture = json.loads(
        (Path(__file__).parents[2] / "server/registry/business_register.json").read_text()
    )
    fixture["entities"] = [e for e in fixture["entities"] if e["name"] != "Primer d.o.o."]
    gone = tmp_path / "register.json"
    gone.write_text(json.dumps(fixture))
    services = server.services
    lifecycle = LifecycleService(
        services.settings,
        server.clock,
        LifecycleStore(services.pool, services.audit),
        services.authenticator._checker,  # type: ignore[arg-type]
        FixtureRegister(gone),
    )

    async def done(_: int) -> None:
        return None

    assert await lifecycle.check_certificates(server.clock.now(), done) == 1
    assert await state(server, COURT) == "closed"
    assert await state(server, DEJAN) == "active"
    reason = await services.pool.fetchval(
        "SELECT closure_reason FROM mailboxes WHERE address = $1", COURT
    )
    assert reason == "entity_gone"


async def test_r8_3_r8_4_signed_closure_then_read_only_access_until_its_date(
    server: RunningServer, dev_pki, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    base = f"/api/v1/mailboxes/{DEJAN}"
    async with server.client("delegate") as dejan, dejan.get(f"{base}/closure-request") as r:
        assert r.status == 200
        document = await r.read()
    assert DEJAN.encode() in document
    p12 = server.pki.p12
    by_bojan = await async_sign_cades_detached(document, p12("qualified").read_bytes(), b"vep")
    mine = await async_sign_cades_detached(document, p12("delegate").read_bytes(), b"vep")
    other = await async_sign_cades_detached(
        b"other" + document, p12("delegate").read_bytes(), b"vep"
    )

    async def close(who: str, signature: bytes) -> tuple[int, dict[str, object]]:
        async with server.client(who) as client:
            async with client.post(f"{base}/closure", data=signature) as r:
                return r.status, await r.json(content_type=None)

    assert (await close("delegate", by_bojan))[1]["reason"] == "signer_mismatch"
    assert (await close("qualified", mine))[1]["reason"] == "not_member"
    status, body = await close("delegate", other)
    assert status == 422
    assert await state(server, DEJAN) == "active"  # refusals changed nothing
    assert await server.services.pool.fetchval("SELECT count(*) FROM closure_requests") == 0
    status, body = await close("delegate", mine)
    assert (status, body["state"]) == (200, "closed")
    assert await server.services.pool.fetchval("SELECT count(*) FROM closure_requests") == 1

    # R8.4: closed — nobody sends to it, its members no longer reach it
    status, refused = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert status in (403, 409, 422), refused
    status, body, _ = await get(server, "delegate", f"{base}/inbox")
    assert (status, json.loads(body)["reason"]) == (403, "mailbox_closed")

    closed_at = await server.services.pool.fetchval(
        "SELECT closed_at FROM mailboxes WHERE address = $1", DEJAN
    )
    env = vep_env(VEP_DATABASE_URL=database_url, VEP_DATA_DIR=str(dev_pki.directory.parent))
    too_late = (add_months(closed_at, 3) + timedelta(days=1)).isoformat()
    grant = ["admin", "readonly-access", "grant", DEJAN, "--operator", "maja", "--until"]
    refused_cli = vep(*grant, too_late, env=env)
    assert refused_cli.returncode == 1 and "beyond_three_months" in refused_cli.stderr
    until = add_months(closed_at, 1)
    granted = vep(*grant, until.isoformat(), env=env)
    assert granted.returncode == 0, granted.stderr
    assert await state(server, DEJAN) == "readonly"

    status, body, _ = await get(server, "delegate", f"{base}/inbox")
    assert status == 200 and json.loads(body)["deliveries"][0]["delivery_id"] == sent["delivery_id"]
    status, _ = await send(server, "delegate", DEJAN, [BOJAN])
    assert status in (403, 409)  # read-only: nothing is sent
    content = f"/api/v1/deliveries/{sent['delivery_id']}/content"
    async with server.client("delegate") as dejan, dejan.delete(content) as r:
        assert (r.status, (await r.json())["reason"]) == (403, "mailbox_not_active")

    server.clock.set(until - timedelta(seconds=1))
    assert await run_job(server, "post-termination") == 0
    assert (await get(server, "delegate", f"{base}/inbox"))[0] == 200
    server.clock.set(until)
    # the grant is over at its time, before the job has closed the mailbox again
    status, body, _ = await get(server, "delegate", f"{base}/inbox")
    assert (status, json.loads(body)["reason"]) == (403, "readonly_ended")
    assert await run_job(server, "post-termination") == 1
    assert await state(server, DEJAN) == "closed"
    status, body, _ = await get(server, "delegate", f"{base}/inbox")
    assert (status, json.loads(body)["reason"]) == (403, "mailbox_closed")
    assert await notices(server, DEJAN) == ["closed", "readonly_granted", "readonly_ended"]


async def test_r8_6_personal_data_removed_ten_years_after_the_contract_ended(
    server: RunningServer,
) -> None:
    assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
    pool = server.services.pool
    evidence_before = await pool.fetch("SELECT sha256 FROM evidence ORDER BY evidence_id")
    ended = server.clock.now()
    changed = await LifecycleStore(pool, server.services.audit).transition(
        DEJAN,
        "closed",
        ended,
        "operator:maja",
        "breach",
        expect=("active",),
        closure_reason="breach",
    )
    assert changed is not None
    server.clock.set(add_years(ended, 10) - timedelta(days=1))
    assert await run_job(server, "personal-data") == 0
    server.clock.set(add_years(ended, 10))
    assert await run_job(server, "personal-data") == 1
    assert await run_job(server, "personal-data") == 0
    row = await pool.fetchrow(
        """SELECT s.name, s.tax_number, s.email, s.personal_data_removed_at
             FROM subscribers s JOIN mailboxes m USING (subscriber_id) WHERE m.address = $1""",
        DEJAN,
    )
    assert (row["name"], row["tax_number"], row["email"]) == ("[removed]", "", "")
    kept = await pool.fetchval(
        "SELECT name FROM subscribers s JOIN mailboxes m USING (subscriber_id) "
        "WHERE m.address = $1",
        BOJAN,
    )
    assert kept != "[removed]"
    # evidence is what R6/R8.1 keep: byte for byte
    assert await pool.fetch("SELECT sha256 FROM evidence ORDER BY evidence_id") == evidence_before


async def test_r1_3_sessions_job_ends_revoked_and_idle_sessions(
    server: RunningServer, pki_service: PkiService
) -> None:
    for identity in ("revocable-sessions", "qualified"):
        async with server.client(identity) as client, client.get("/api/v1/session") as r:
            assert r.status == 200
    pool = server.services.pool
    assert await run_job(server, "sessions") == 0
    pki_service.revoke("revocable-sessions")
    server.clock.advance(timedelta(minutes=1))
    assert await run_job(server, "sessions") == 1
    rows = await pool.fetch(
        """SELECT p.common_name, s.end_reason FROM sessions s
             JOIN persons p USING (person_id) ORDER BY p.common_name"""
    )
    assert [(r["common_name"], r["end_reason"]) for r in rows] == [
        ("Bojan Kranjc", None),
        ("Janez Potočnik", "revoked"),
    ]
    server.clock.advance(timedelta(minutes=30))
    assert await run_job(server, "sessions") == 1
    last = await pool.fetchval(
        "SELECT end_reason FROM sessions WHERE ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT 1"
    )
    assert last == "idle"
    # R9.1: both ends are audited, in the job's name, with what ended (they were not, or
    # apart from the change)
    ends = await pool.fetch(
        "SELECT actor, details FROM audit_events WHERE action = 'session.end' ORDER BY seq"
    )
    assert [(e["actor"], e["details"]["reason"], e["details"]["sessions"]) for e in ends] == [
        ("system:sessions", "revoked", 1),
        ("system:sessions", "idle", 1),
    ]


def test_r8_1_retention_below_three_months_refuses_to_start(database_url: str) -> None:
    env = vep_env(VEP_DATABASE_URL=database_url, VEP_RETENTION_MONTHS="2")
    result = vep("check-config", env=env)
    assert result.returncode == 2 and "VEP_RETENTION_MONTHS" in result.stderr
    ok = vep("check-config", env={**env, "VEP_RETENTION_MONTHS": "3"})
    assert ok.returncode == 0, ok.stderr
