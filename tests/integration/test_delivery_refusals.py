"""R5.6, R3.2, R1.5: every refusal of a submission, with its reason, now that the sender's
membership and mailbox are read in one statement (issue 4 benchmark). Each refusal leaves
nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import aiohttp.multipart
import asyncpg
import pytest

from tests.conftest import PkiService
from tests.integration.test_deliveries import BOJAN, COURT, DEJAN, PDF, _state, get, send
from tests.integration.test_submission_writer import blocked_on_lock
from tests.mailbox_support import add_delegate, open_delivery_world, person_id
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


async def _set_state(server: RunningServer, address: str, state: str) -> None:
    await server.services.pool.execute(
        "UPDATE mailboxes SET state = $2 WHERE address = $1", address, state
    )


async def test_r3_2_a_delegate_sends_only_with_the_send_permission(server: RunningServer) -> None:
    assert (await add_delegate(server, "qualified-qscd", COURT, "reader", ["read"]))[0] == 201
    assert (await add_delegate(server, "qualified-qscd", COURT, "sender", ["send"]))[0] == 201
    before = await _state(server)
    status, body = await send(server, "reader", COURT, [DEJAN])
    assert (status, body["reason"], body["permission"]) == (403, "permission_required", "send")
    assert await _state(server) == before
    status, body = await send(server, "sender", COURT, [DEJAN])
    assert (status, body["to"]) == (201, [DEJAN]), body


@pytest.mark.parametrize(
    ("state", "status", "reason"),
    [
        ("suspended", 409, "mailbox_not_active"),
        ("temporary", 409, "mailbox_not_active"),
        ("readonly", 409, "mailbox_not_active"),
        ("closed", 403, "mailbox_closed"),
        ("purged", 403, "not_member"),
    ],
)
async def test_r5_6_a_sender_mailbox_that_is_not_active_cannot_send(
    server: RunningServer, state: str, status: int, reason: str
) -> None:
    before = await _state(server)
    await _set_state(server, COURT, state)
    answer, body = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert (answer, body["reason"]) == (status, reason), body
    assert await _state(server) == before


async def test_r1_5_non_members_and_unenrolled_certificates_cannot_send(
    server: RunningServer,
) -> None:
    before = await _state(server)
    status, body = await send(server, "delegate", COURT, [BOJAN])  # Dejan is no member
    assert (status, body["reason"]) == (403, "not_member")
    await server.services.pool.execute(
        "DELETE FROM membership_certificates WHERE address = $1 AND person_id = $2",
        COURT,
        person_id(server, "qualified-qscd"),
    )
    status, body = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert (status, body["reason"]) == (403, "certificate_not_enrolled")
    assert await _state(server) == before


async def test_r5_6_each_recipient_is_refused_with_its_own_reason(server: RunningServer) -> None:
    before = await _state(server)
    await _set_state(server, DEJAN, "suspended")
    status, body = await send(
        server, "qualified-qscd", COURT, ["nobody@vep.si", DEJAN, COURT, BOJAN]
    )
    assert (status, body["reason"]) == (422, "invalid_fields")
    assert body["errors"] == [
        {"field": "to[0]", "reason": "unknown_recipient"},
        {"field": "to[1]", "reason": "recipient_not_active"},
        {"field": "to[2]", "reason": "own_mailbox"},
    ]
    await _set_state(server, DEJAN, "closed")
    status, body = await send(server, "qualified-qscd", COURT, [BOJAN, DEJAN])
    assert body["errors"] == [{"field": "to[1]", "reason": "recipient_not_active"}]
    assert await _state(server) == before


async def test_r5_1_several_recipients_each_named_in_the_evidence(server: RunningServer) -> None:
    status, body = await send(server, "qualified-qscd", COURT, [" Dejan@vep.si", BOJAN, DEJAN])
    assert (status, body["to"]) == (201, [DEJAN, BOJAN]), body
    pool = server.services.pool
    names = await pool.fetch(
        "SELECT display_name FROM mailboxes WHERE address = ANY($1::text[])", [DEJAN, BOJAN]
    )
    xml = await pool.fetchval(
        "SELECT xml FROM evidence WHERE delivery_id = $1::uuid AND recipient_address IS NULL",
        body["delivery_id"],
    )
    for row in names:
        assert row["display_name"].encode() in bytes(xml)


async def test_a_commit_whose_answer_is_lost_keeps_the_content_and_says_so(
    server: RunningServer, database_url: str
) -> None:
    """The connection is cut while the submission waits to commit: the client learns the
    outcome is unknown and which delivery to look up; the content file stays (it would be
    the content of a delivery that did commit); the server carries on."""
    large = PDF[:-6] + bytes(40_000) + PDF[-6:]  # over the inline limit: a file on disk
    deliveries, evidence, files = await _state(server)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT * FROM audit_head FOR UPDATE")
            sending = asyncio.create_task(
                send(
                    server,
                    "qualified-qscd",
                    COURT,
                    [DEJAN],
                    files=[("big.pdf", large, "application/pdf")],
                )
            )
            backend = await blocked_on_lock(server.services.pool)
            await holder.execute("SELECT pg_terminate_backend($1)", backend)
            status, body = await sending
    finally:
        await holder.close()
    assert (status, body["reason"]) == (503, "outcome_unknown"), body
    assert body["href"] == f"/api/v1/deliveries/{body['delivery_id']}"
    assert await _state(server) == (deliveries, evidence, files + 1)
    assert (await get(server, "qualified-qscd", body["href"]))[0] == 404  # it did not commit
    status, body = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert status == 201, body


async def _post_raw(
    server: RunningServer, body: bytes, content_type: str, who: str = "qualified-qscd"
) -> tuple[int, Any]:
    async with server.client(who) as client:
        async with client.post(
            f"/api/v1/mailboxes/{COURT}/deliveries",
            data=body,
            headers={"Content-Type": content_type},
        ) as r:
            return r.status, await r.json(content_type=None)


async def test_a_multipart_body_without_a_boundary_or_led_by_charset_is_refused(
    server: RunningServer,
) -> None:
    """A clear 400 for a body that cannot be split, and RFC 7578 §4.6's ``_charset_`` is a
    part like any other here (the metadata is JSON, UTF-8): refused, not silently eaten."""
    before = await _state(server)
    status, body = await _post_raw(server, b"--b\r\n", "multipart/form-data")
    assert (status, body["reason"]) == (400, "malformed_multipart"), body
    charset = b'Content-Disposition: form-data; name="_charset_"\r\n\r\nutf-8'
    metadata = (
        b'Content-Disposition: form-data; name="metadata"\r\n\r\n'
        + json.dumps({"to": [DEJAN], "subject": "x", "kind": "registered"}).encode()
    )
    file = (
        b'Content-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + PDF
    )

    def body_of(*parts: bytes) -> bytes:
        return b"".join(b"--b\r\n" + part + b"\r\n" for part in parts) + b"--b--\r\n"

    status, body = await _post_raw(
        server, body_of(charset, metadata, file), "multipart/form-data; boundary=b"
    )
    assert (status, body["reason"]) == (400, "metadata_first"), body
    assert await _state(server) == before
    status, body = await _post_raw(
        server, body_of(metadata, file), "multipart/form-data; boundary=b"
    )
    assert status == 201, body


async def test_an_ordinary_body_never_reaches_aiohttps_disposition_parser(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 4: its slow parser ran once per submission for the first part alone."""
    calls = []
    original = aiohttp.multipart.parse_content_disposition

    def counted(header: str | None) -> tuple[str | None, dict[str, str]]:
        calls.append(header)
        return original(header)

    monkeypatch.setattr(aiohttp.multipart, "parse_content_disposition", counted)
    status, body = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert status == 201, body
    assert calls == []


async def test_r1_5_a_non_member_is_refused_before_anything_about_the_body(
    server: RunningServer,
) -> None:
    """The metadata is read before the sender is authorised (one read finds both): a
    non-member still learns only that it is not a member, whatever the body."""
    before = await _state(server)
    metadata = b'Content-Disposition: form-data; name="metadata"\r\n\r\n'
    bodies = {
        "unsupported_media_type": (b"{}", "application/json"),
        "empty_body": (b"--b--\r\n", "multipart/form-data; boundary=b"),
        "metadata_first": (
            b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        "malformed_json": (
            b"--b\r\n" + metadata + b"{not json\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
        "invalid_fields": (
            b"--b\r\n"
            + metadata
            + json.dumps({"to": ["nobody@vep.si"]}).encode()
            + b"\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    }
    for reason, (body, content_type) in bodies.items():
        status, answer = await _post_raw(server, body, content_type)  # Ana: a member
        assert (status, answer["reason"]) == (400 if reason != "invalid_fields" else 422, reason)
        status, answer = await _post_raw(server, body, content_type, "delegate")  # no member
        assert (status, answer["reason"]) == (403, "not_member"), (reason, answer)
    assert await _state(server) == before


async def _upload_while(
    server: RunningServer, who: str, meanwhile: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Any]:
    """Submit a delivery whose body is still streaming when ``meanwhile`` runs: the
    server authorises the sender (observed, not replaced), ``meanwhile()`` changes the
    sender's rights, the body ends."""
    members = server.services.mailboxes
    authorised = asyncio.Event()
    authorize = members.authorize

    async def observed(*args: Any, **kwargs: Any) -> Any:
        access = await authorize(*args, **kwargs)
        authorised.set()
        return access

    monkeypatch.setattr(members, "authorize", observed)

    async def body() -> Any:
        yield b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        yield json.dumps({"to": [DEJAN], "subject": "x", "kind": "registered"}).encode()
        yield b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="c.pdf"'
        yield b"\r\nContent-Type: application/pdf\r\n\r\n"
        # the file's bytes a little at a time until the server has authorised: its
        # multipart reader ends the metadata part only once data after the boundary came
        sent = 0
        while not authorised.is_set():
            yield PDF[sent : sent + 256] or b"%"
            sent += 256
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(authorised.wait(), 0.05)
        await meanwhile()
        yield b"\r\n--b--\r\n"

    async with server.client(who) as client:
        async with client.post(
            f"/api/v1/mailboxes/{COURT}/deliveries",
            data=body(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        ) as response:
            return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE memberships SET permissions = '{read}' WHERE person_id = $1",
        "DELETE FROM memberships WHERE person_id = $1",
        "UPDATE mailboxes SET state = 'suspended' WHERE address = 'primer@vep.si'"
        " AND $1::text IS NOT NULL",
    ],
    ids=["send-withdrawn", "removed", "mailbox-suspended"],
)
async def test_r3_2_rights_lost_during_the_upload_refuse_the_commit(
    server: RunningServer, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R3.2: removal takes effect at once — also for an upload already under way (it may
    take minutes): the submission statement checks the sender again, and the refusal
    leaves nothing behind."""
    assert (await add_delegate(server, "qualified-qscd", COURT, "sender", ["send"]))[0] == 201
    sender = person_id(server, "sender")
    before = await _state(server)

    async def meanwhile() -> None:
        await server.services.pool.execute(change, sender)

    status, body = await _upload_while(server, "sender", meanwhile, monkeypatch)
    assert (status, body["reason"]) == (403, "sender_not_allowed"), body
    assert await _state(server) == before


async def test_r3_2_an_upload_that_keeps_its_rights_is_committed(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same upload with the rights unchanged (another delegate removed meanwhile)."""
    assert (await add_delegate(server, "qualified-qscd", COURT, "sender", ["send"]))[0] == 201
    assert (await add_delegate(server, "qualified-qscd", COURT, "reader", ["read"]))[0] == 201
    other = person_id(server, "reader")

    async def meanwhile() -> None:
        await server.services.pool.execute("DELETE FROM memberships WHERE person_id = $1", other)

    status, body = await _upload_while(server, "sender", meanwhile, monkeypatch)
    assert (status, body["to"]) == (201, [DEJAN]), body


async def test_r4_3_refusals_naming_unknown_recipients_count_as_directory_lookups(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """A refusal that says which of up to 50 addresses exist is a lookup for each address
    it names: it counts against the same hourly limit, or unlisted natural persons (R4.2)
    could be found 50 at a time (found in review: it counted one for all 50)."""
    settings = make_settings(dev_pki, database_url, directory_lookups_per_hour=5)
    async with running_server(settings, dev_pki) as server:
        await open_delivery_world(server)
        await _set_state(server, BOJAN, "suspended")  # exists, not active: as telling
        before = await _state(server)
        for to, reason in (("nobody@vep.si", "unknown_recipient"), (BOJAN, "recipient_not_active")):
            status, body = await send(server, "qualified-qscd", COURT, [DEJAN, to])
            assert status == 422
            assert {"field": "to[1]", "reason": reason} in body["errors"], body
        # two addresses each: 4 of 5 spent; naming two more would pass the limit
        status, body = await send(server, "qualified-qscd", COURT, [DEJAN, "nobody@vep.si"])
        assert (status, body["reason"]) == (429, "rate_limited"), body
        status, body = await send(server, "qualified-qscd", COURT, ["nobody@vep.si"])
        assert status == 422, body  # the fifth
        status, _, headers = await get(server, "qualified-qscd", "/api/v1/directory?q=dejan")
        assert status == 429 and int(headers["Retry-After"]) > 0  # the same budget
        assert await _state(server) == before
        # deliveries to known recipients are no lookups, and go on
        assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
