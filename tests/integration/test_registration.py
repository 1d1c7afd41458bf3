"""R2: registration with a contract signed by qualified signature; refusals leave nothing."""

from __future__ import annotations

from typing import Any

import pytest

from server.services.operator import OperatorService
from server.store.audit import AuditHeadMissing
from server.store.mailboxes import MailboxStore
from tests.conftest import PkiService
from tests.mailbox_support import (
    contract,
    legal,
    natural,
    open_mailbox,
    put_signed,
    sign,
    start,
)
from tests.support import (
    RunningServer,
    assert_schema,
    audit_head_removed,
    make_settings,
    running_server,
)

pytestmark = pytest.mark.integration


async def _counts(server: RunningServer) -> dict[str, int]:
    tables = ("registrations", "subscribers", "mailboxes", "contracts", "memberships")
    return {t: await server.services.pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        yield running


@pytest.mark.parametrize("how", ["pades", "cades"])
async def test_r2_1_natural_person_opens_mailbox_at_once(server: RunningServer, how: str) -> None:
    opened = await open_mailbox(server, "qualified-qscd", natural("ana.novak"), how)
    assert opened["address"] == "ana.novak@vep.si"
    assert opened["state"] == "active"
    async with server.client("qualified-qscd") as client:
        async with client.get("/api/v1/mailboxes") as response:
            mine = (await response.json())["mailboxes"]
    assert mine == [
        {
            "address": "ana.novak@vep.si",
            "display_name": "Ana Novak",
            "state": "active",
            "kind": "single",
            "public_body": False,
            "role": "custodian",
            "permissions": ["read", "send", "accept", "manage"],
            "certificate_enrolled": True,
        }
    ]
    pool = server.services.pool
    row = await pool.fetchrow("SELECT * FROM contracts")
    assert row["signature_format"] == how
    assert row["verification"]["format"] == how
    history = await pool.fetch("SELECT from_state, to_state, actor FROM mailbox_state_changes")
    assert [(h["from_state"], h["to_state"]) for h in history] == [(None, "active")]
    subscriber = await pool.fetchrow("SELECT name, kind, tax_number FROM subscribers")
    assert dict(subscriber) == {"name": "Ana Novak", "kind": "natural", "tax_number": "10000003"}


async def test_r2_1_names_come_from_the_certificate(server: RunningServer) -> None:
    opened = await open_mailbox(
        server, "qualified", natural("bojan", name="Mallory Impostor", email="b@example.si")
    )
    name = await server.services.pool.fetchval(
        "SELECT display_name FROM mailboxes WHERE address = $1", opened["address"]
    )
    assert name == "Bojan Kranjc"


async def test_r2_3_legal_entity_signed_by_representative_is_active(server: RunningServer) -> None:
    opened = await open_mailbox(server, "qualified-qscd", legal("primer"))
    assert opened["state"] == "active"
    kind = await server.services.pool.fetchval("SELECT kind FROM mailboxes")
    assert kind == "multi"


async def test_r2_3_legal_entity_signed_by_other_person_is_temporary(
    server: RunningServer,
) -> None:
    """Dejan is not listed as representative of Primer d.o.o.: temporary until the paper
    contract is recorded by an operator (vep admin contract-received)."""
    opened = await open_mailbox(server, "delegate", legal("primer"))
    assert opened["state"] == "temporary"
    operator = OperatorService(
        server.clock, MailboxStore(server.services.pool, server.services.audit)
    )
    assert await operator.contract_received("primer@vep.si", "maja") == "active"
    history = await server.services.pool.fetch(
        "SELECT from_state, to_state, actor FROM mailbox_state_changes ORDER BY change_id"
    )
    assert [(h["from_state"], h["to_state"], h["actor"]) for h in history][1] == (
        "temporary",
        "active",
        "operator:maja",
    )
    with pytest.raises(Exception, match="only a temporary or suspended mailbox"):
        await operator.contract_received("primer@vep.si", "maja")


async def _contract_facts(server: RunningServer) -> tuple[str, object, int]:
    pool = server.services.pool
    row = await pool.fetchrow("SELECT state, paper_contract_received_at FROM mailboxes")
    audited = await pool.fetchval("SELECT count(*) FROM audit_events WHERE actor = 'operator:maja'")
    assert row is not None
    return row["state"], row["paper_contract_received_at"], audited


async def test_r2_3_a_paper_contract_reopens_a_suspended_mailbox_and_no_closed_one(
    server: RunningServer,
) -> None:
    """Suspended on day 8 for want of it, the mailbox reopens when the paper contract comes
    late, with its date (found in review: nothing led out of suspension). A closed mailbox
    is refused it and keeps no date of it (recorded apart, the date stayed, unaudited, on a
    mailbox nothing would open)."""
    await open_mailbox(server, "delegate", legal("primer"))
    store = MailboxStore(server.services.pool, server.services.audit)
    await store.change_state(
        "primer@vep.si", "suspended", server.clock.now(), "system", "test", ("temporary",)
    )
    operator = OperatorService(server.clock, store)
    assert await operator.contract_received("primer@vep.si", "maja") == "active"
    assert await _contract_facts(server) == ("active", server.clock.now(), 1)
    await store.change_state(
        "primer@vep.si", "closed", server.clock.now(), "system", "test", ("active",)
    )
    await server.services.pool.execute("UPDATE mailboxes SET paper_contract_received_at = NULL")
    with pytest.raises(Exception, match="only a temporary or suspended mailbox"):
        await operator.contract_received("primer@vep.si", "maja")
    assert await _contract_facts(server) == ("closed", None, 1)


async def test_r2_3_the_paper_contract_and_the_opening_commit_together(
    server: RunningServer,
) -> None:
    """When the opening cannot be audited (the audit chain's head is gone), the contract's
    date is not kept either; once the chain is back, the same command opens the mailbox."""
    await open_mailbox(server, "delegate", legal("primer"))
    pool = server.services.pool
    operator = OperatorService(server.clock, MailboxStore(pool, server.services.audit))
    async with audit_head_removed(pool):
        with pytest.raises(AuditHeadMissing):
            await operator.contract_received("primer@vep.si", "maja")
        assert await _contract_facts(server) == ("temporary", None, 0)
    assert await operator.contract_received("primer@vep.si", "maja") == "active"
    state, received, audited = await _contract_facts(server)
    assert (state, received, audited) == ("active", server.clock.now(), 1)


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"local_part": "a"}, "local_part", "format"),
    ({"local_part": "postmaster"}, "local_part", "reserved"),
    ({"tax_number": "10000004"}, "tax_number", "checksum"),
    ({"tax_number": "1000000"}, "tax_number", "format"),
    ({"email": "ana@"}, "email", "format"),
    ({"birth_date": "2020-01-01"}, "birth_date", "under_age"),
    ({"birth_date": "17.5.1990"}, "birth_date", "format"),
    ({"accept_terms": False}, "accept_terms", "must_accept"),
    ({"accept_price_list": None}, "accept_price_list", "must_accept"),
    ({"admin_password": "short"}, "admin_password", "too_short"),
    ({"einvoice": True}, "iban", "required"),  # IBAN only when e-invoices are chosen
    ({"einvoice": True, "iban": "SI56191000000123439"}, "iban", "checksum"),
    ({"kind": "robot"}, "kind", "choice"),
    ({"mailbox_kind": "shared"}, "mailbox_kind", "choice"),
]


@pytest.mark.parametrize(("change", "field", "reason"), BAD_FIELDS)
async def test_r2_1_invalid_field_is_refused_and_nothing_stored(
    server: RunningServer, change: dict[str, Any], field: str, reason: str
) -> None:
    async with server.client("qualified-qscd") as client:
        status, body = await start(client, {**natural("ana.novak"), **change})
    assert status == 422
    assert body["reason"] == "invalid_fields"
    assert {"field": field, "reason": reason} in body["errors"]
    assert_schema("problem", body)
    assert all(v == 0 for v in (await _counts(server)).values())


async def test_r2_1_every_bad_field_is_reported_at_once(server: RunningServer) -> None:
    async with server.client("qualified-qscd") as client:
        status, body = await start(
            client, {**natural("A"), "tax_number": "1", "email": "x", "accept_terms": False}
        )
    assert status == 422
    assert {e["field"] for e in body["errors"]} == {
        "local_part",
        "tax_number",
        "email",
        "accept_terms",
    }


async def test_r2_1_iban_accepted_when_einvoice_chosen(server: RunningServer) -> None:
    async with server.client("qualified-qscd") as client:
        status, body = await start(
            client, natural("ana.novak", einvoice=True, iban="SI56 1910 0000 0123 438")
        )
    assert status == 201, body


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"registration_number": "4567890"}, "registration_number", "checksum"),
        ({"registration_number": "2345684"}, "registration_number", "not_in_register"),
        (
            {"registration_number": "6789013", "tax_number": "67890121"},
            "registration_number",
            "entity_inactive",
        ),
        ({"tax_number": "34567895"}, "tax_number", "register_mismatch"),
        ({"name": "Drugo ime d.o.o."}, "name", "register_mismatch"),
        ({"iban": None}, "iban", "required"),
        ({"vat_payer": "yes"}, "vat_payer", "type"),
    ],
)
async def test_r2_2_legal_entity_checked_against_register(
    server: RunningServer, change: dict[str, Any], field: str, reason: str
) -> None:
    async with server.client("qualified-qscd") as client:
        status, body = await start(client, legal("primer", **change))
    assert status == 422, body
    assert {"field": field, "reason": reason} in body["errors"]
    assert (await _counts(server))["registrations"] == 0


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("unpaid_debt_cents", 1, "unpaid_debt"),
        ("termination_reason", "breach", "terminated_for_breach"),
    ],
)
async def test_r2_5_refused_for_debt_or_breach_with_reason(
    server: RunningServer, column: str, value: object, reason: str
) -> None:
    await open_mailbox(server, "qualified-qscd", natural("ana.novak"))
    await server.services.pool.execute(
        f"UPDATE subscribers SET {column} = $1",
        value,
    )
    before = await _counts(server)
    async with server.client("qualified-qscd") as client:
        status, body = await start(client, natural("ana.druga"))
    assert (status, body["reason"]) == (403, reason)
    assert await _counts(server) == before


async def test_r2_5_the_debt_follows_the_person_not_a_typed_tax_number(
    server: RunningServer,
) -> None:
    """Found in review: standing was looked up by the tax number typed in, which a natural
    person's certificate does not state (PNOSI serial numbers), so Ana in debt registered
    again with another valid number — and the debt then lay under that number, refusing its
    real holder. Now a person is known by their certificate's identity (R1.4); a company by
    its register-checked number, and only by companies' debts."""
    await open_mailbox(server, "qualified-qscd", natural("ana.novak"))
    # Ana opens a second mailbox typing Dejan's number (nothing proves it is not hers) …
    await open_mailbox(server, "qualified-qscd", natural("ana.druga", tax_number="12345679"))
    # … and Bojan one typing Primer d.o.o.'s
    await open_mailbox(server, "qualified", natural("bojan", tax_number="23456787"))
    await server.services.pool.execute("UPDATE subscribers SET unpaid_debt_cents = 500")
    before = await _counts(server)
    async with server.client("qualified-qscd") as client:
        status, body = await start(client, natural("ana.tretja", tax_number="45678901"))
    assert (status, body["reason"]) == (403, "unpaid_debt")  # whatever number she types
    assert await _counts(server) == before
    async with server.client("delegate") as client:  # Dejan, the number's real holder
        status, body = await start(client, natural("dejan", tax_number="12345679"))
    assert status == 201, body
    async with server.client("qualified-qscd") as client:  # Ana for Primer d.o.o.
        status, body = await start(client, legal("primer"))
    assert status == 201, body  # Bojan's debt is his, not the company's


async def test_r2_5_paid_up_subscriber_may_register_again(server: RunningServer) -> None:
    await open_mailbox(server, "qualified-qscd", natural("ana.novak"))
    await server.services.pool.execute("UPDATE subscribers SET termination_reason = 'request'")
    await open_mailbox(server, "qualified-qscd", natural("ana.druga"))


async def test_r2_1_address_taken_by_mailbox_or_pending_registration(
    server: RunningServer,
) -> None:
    await open_mailbox(server, "qualified-qscd", natural("ana.novak"))
    async with server.client("qualified") as client:
        status, body = await start(client, natural("ana.novak"))
        assert (status, body["errors"]) == (422, [{"field": "local_part", "reason": "taken"}])
        status, _ = await start(client, natural("bojan"))
        assert status == 201
    async with server.client("qualified-qscd") as client:  # held by Bojan's registration
        status, body = await start(client, natural("bojan"))
        assert body["errors"] == [{"field": "local_part", "reason": "taken"}]


@pytest.mark.parametrize(
    ("signer", "how", "reason"),
    [
        ("delegate", "pades", "signer_mismatch"),  # another (qualified) person signed
        ("delegate", "cades", "signer_mismatch"),
        ("non-qualified", "pades", "not_qualified"),
        ("revoked", "cades", "revoked"),
    ],
)
async def test_r2_1_contract_signature_refusals_leave_nothing(
    server: RunningServer, signer: str, how: str, reason: str
) -> None:
    async with server.client("qualified-qscd") as client:
        status, started = await start(client, natural("ana.novak"))
        pdf = await contract(client, started)
        signed = await sign(server, signer, pdf, how)
        status, body = await put_signed(client, started, signed, how)
    assert (status, body["reason"]) in {(403, reason), (422, reason)}
    counts = await _counts(server)
    assert counts["mailboxes"] == counts["contracts"] == counts["subscribers"] == 0
    assert counts["registrations"] == 1  # the pending one: the user may sign again


async def test_r2_1_signature_over_other_bytes_or_tampered_pdf(server: RunningServer) -> None:
    async with server.client("qualified-qscd") as client:
        _, first = await start(client, natural("ana.novak"))
        _, second = await start(client, natural("ana.druga"))
        other_pdf = await contract(client, second)
        pdf = await contract(client, first)
        # a signature over the other registration's contract
        for how in ("pades", "cades"):
            signed = await sign(server, "qualified-qscd", other_pdf, how)
            status, body = await put_signed(client, first, signed, how)
            assert (status, body["reason"]) == (422, "wrong_document")
        # a byte of the signed PDF changed after signing
        signed = bytearray(await sign(server, "qualified-qscd", pdf, "pades"))
        at = signed.index(b"Ana Novak") if b"Ana Novak" in signed else len(pdf) // 2
        signed[at] ^= 0x01
        status, body = await put_signed(client, first, bytes(signed), "pades")
        assert status == 422 and body["reason"] in {"signature_invalid", "wrong_document"}
        status, body = await put_signed(client, first, b"not a signature", "cades")
        assert (status, body["reason"]) == (422, "signature_malformed")
    assert (await _counts(server))["mailboxes"] == 0


async def test_r2_1_contract_is_private_and_signed_once(server: RunningServer) -> None:
    async with server.client("qualified-qscd") as client:
        _, started = await start(client, natural("ana.novak"))
        pdf = await contract(client, started)
    async with server.client("qualified") as other:
        async with other.get(started["contract"]) as response:
            assert response.status == 404
        signed = await sign(server, "qualified", pdf, "pades")
        status, _ = await put_signed(other, started, signed, "pades")
        assert status == 404
    async with server.client("qualified-qscd") as client:
        signed = await sign(server, "qualified-qscd", pdf, "cades")
        assert (await put_signed(client, started, signed, "cades"))[0] == 201
        status, body = await put_signed(client, started, signed, "cades")
        assert (status, body["reason"]) == (409, "already_signed")


async def test_r2_1_malformed_json_is_400_and_stores_nothing(server: RunningServer) -> None:
    async with server.client("qualified-qscd") as client:
        async with client.post(
            "/api/v1/registrations", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
            assert (await response.json(content_type=None))["reason"] == "malformed_json"
    assert (await _counts(server))["registrations"] == 0


async def test_r2_1_signed_contract_arriving_in_pieces_is_read_whole(
    server: RunningServer,
) -> None:
    """curl sends a large body after `100-continue`, in several segments: read to the end."""
    import asyncio

    async with server.client("qualified-qscd") as client:
        _, started = await start(client, natural("ana.novak"))
        signed = await sign(server, "qualified-qscd", await contract(client, started), "pades")

        async def pieces():  # type: ignore[no-untyped-def]
            for i in range(0, len(signed), 1000):
                yield signed[i : i + 1000]
                await asyncio.sleep(0.001)

        async with client.put(
            started["sign_at"],
            data=pieces(),
            headers={"Content-Type": "application/pdf", "Expect": "100-continue"},
        ) as response:
            assert response.status == 201, await response.text()


async def test_r2_1_oversized_signed_contract_is_413_and_stores_nothing(
    server: RunningServer,
) -> None:
    async with server.client("qualified-qscd") as client:
        _, started = await start(client, natural("ana.novak"))

        async def flood():  # type: ignore[no-untyped-def]
            for _ in range(11):
                yield b"\0" * (1024 * 1024)

        async with client.put(
            started["sign_at"], data=flood(), headers={"Content-Type": "application/pdf"}
        ) as response:
            assert response.status == 413
            assert (await response.json(content_type=None))["reason"] == "too_large"
    assert (await _counts(server))["mailboxes"] == 0


async def test_r8_2_the_contract_states_the_prices_billing_charges(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Found in review: the contract's fixed price list said 2,00 EUR + DDV a month while
    billing invoiced 5,00 and 15,00 EUR. The contract now reads the billing settings."""
    from server.settings_lifecycle import LifecycleSettings
    from tests.integration.test_receipts import pdf_text

    rules = LifecycleSettings(
        scheduled_jobs=(),
        price_single_cents=740,
        price_multi_cents=1905,
        price_einvoice_yearly_cents=3000,
    )
    settings = make_settings(dev_pki, database_url, lifecycle=rules)
    async with running_server(settings, dev_pki) as server, server.client("qualified-qscd") as c:
        status, started = await start(c, natural("ana.novak"))
        assert status == 201, started
        text = pdf_text(await contract(c, started))
    assert "7,40 EUR" in text and "19,05 EUR" in text and "30,00 EUR" in text
    assert "2,00 EUR" not in text


async def test_r4_3_registration_tells_an_address_is_taken_only_within_the_lookup_budget(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Found in review: "taken" told anyone whether an address is a mailbox — unlisted
    natural persons too (R4.2) — with no limit. Each such answer is a directory lookup."""
    settings = make_settings(dev_pki, database_url, directory_lookups_per_hour=2)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", natural("ana.novak"))
        async with server.client("qualified") as bojan:
            for _ in range(2):
                status, body = await start(bojan, natural("ana.novak"))
                assert (status, body["errors"]) == (
                    422,
                    [{"field": "local_part", "reason": "taken"}],
                )
            status, body = await start(bojan, natural("ana.novak"))
            assert (status, body["reason"]) == (429, "rate_limited")
            status, _ = await start(bojan, natural("bojan"))  # a free address tells nothing
            assert status == 201


async def test_r2_1_one_person_holds_at_most_three_addresses_and_no_hold_for_ever(
    server: RunningServer,
) -> None:
    """Found in review: every start held its address for a day, without limit, and
    starting again renewed one's own hold, so an address could be held for ever."""
    from datetime import timedelta

    async with server.client("qualified") as bojan:
        for local in ("bojan", "bojan.a", "bojan.b"):
            assert (await start(bojan, natural(local)))[0] == 201
        status, body = await start(bojan, natural("bojan.c"))
        assert (status, body["reason"]) == (409, "too_many_pending")
        server.clock.advance(timedelta(hours=23))
        assert (await start(bojan, natural("bojan")))[0] == 201  # again: no new day
    server.clock.advance(timedelta(hours=1))  # the first hold's day is over
    async with server.client("qualified-qscd") as ana:
        status, body = await start(ana, natural("bojan"))
    assert status == 201, body
    async with server.client("qualified") as bojan:  # his three have lapsed: he may again
        assert (await start(bojan, natural("bojan.c")))[0] == 201


async def test_r2_1_the_hold_cap_holds_for_parallel_starts(server: RunningServer) -> None:
    """Review of the cap: the lock was per address, so starts for different addresses at
    once each counted fewer than three holds. A third connection holds the six addresses'
    locks until every start waits at its own, then lets them all go at once."""
    import asyncio

    from server.store.registrations import ADDRESS_LOCK

    locals_ = [f"bojan.{n}" for n in range(6)]

    async def one(local: str) -> int:
        async with server.client("qualified") as bojan:
            return (await start(bojan, natural(local)))[0]

    async with server.services.pool.acquire() as gate, gate.transaction():
        for local in locals_:
            await gate.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", ADDRESS_LOCK, local
            )
        starts = [asyncio.create_task(one(local)) for local in locals_]
        for _ in range(300):  # until all six wait at a lock (each hashes its password first)
            waiting = await server.services.pool.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting >= len(locals_):
                break
            await asyncio.sleep(0.1)
        assert waiting >= len(locals_)
    statuses = await asyncio.gather(*starts)
    assert sorted(statuses) == [201, 201, 201, 409, 409, 409]
