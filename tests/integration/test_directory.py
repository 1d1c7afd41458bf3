"""R4: the directory — logged-in users only, listing rules, capped, rate-limited; and the
public reference list of businesses (R4.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import PkiService
from tests.mailbox_support import legal, natural, open_mailbox
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    settings = make_settings(dev_pki, database_url, directory_lookups_per_hour=1000)
    async with running_server(settings, dev_pki) as running:
        await open_mailbox(running, "qualified-qscd", legal("primer"))  # listed by default
        await open_mailbox(
            running,
            "qualified",
            legal(
                "kranjc",
                registration_number="3456781",
                tax_number="34567895",
                name="Kranjc in partnerji, odvetniška družba o.p., d.o.o.",
            ),
        )
        await open_mailbox(
            running,
            "delegate",
            legal(  # not a representative: temporary
                "zupan",
                registration_number="4567897",
                tax_number="45678901",
                name="Zupan trgovina d.o.o.",
            ),
        )
        await open_mailbox(running, "qualified-qscd", natural("ana.novak"))  # not listed
        await open_mailbox(running, "manager", natural("tomaz", tax_number="12345679"))
        async with running.client("qualified") as bojan:
            async with bojan.patch(
                "/api/v1/mailboxes/kranjc@vep.si/settings", json={"directory_listed": False}
            ) as r:
                assert r.status == 204
        async with running.client("manager") as tomaz:
            async with tomaz.patch(
                "/api/v1/mailboxes/tomaz@vep.si/settings", json={"directory_listed": True}
            ) as r:
                assert r.status == 204
        yield running


async def _search(server: RunningServer, who: str | None, q: str | None):  # type: ignore[no-untyped-def]
    params = {} if q is None else {"q": q}
    async with server.client(who) as client:
        async with client.get("/api/v1/directory", params=params) as response:
            return response.status, await response.json(content_type=None), response.headers


async def test_r4_1_only_for_logged_in_users(server: RunningServer) -> None:
    status, body, _ = await _search(server, None, "primer")
    assert (status, body["reason"]) == (401, "certificate_required")


async def test_r4_2_listing_rules(server: RunningServer) -> None:
    found = {}
    for q in ("primer", "kranjc", "zupan", "novak", "vovk", "d.o.o."):
        status, body, _ = await _search(server, "reader", q)
        assert status == 200
        found[q] = [e["address"] for e in body["results"]]
    assert found["primer"] == ["primer@vep.si"]  # business: listed unless it opted out
    assert found["kranjc"] == []  # opted out
    assert found["zupan"] == []  # temporary mailbox: not yet in the directory
    assert found["novak"] == []  # natural person without consent
    assert found["vovk"] == ["tomaz@vep.si"]  # natural person who opted in
    assert found["d.o.o."] == ["primer@vep.si"]


@pytest.mark.parametrize(
    "query", ["2345676", "23456787", "Dunajska cesta", "1000 Ljubljana", "PRIMER", "primer@vep"]
)
async def test_r4_3_search_by_number_name_address(server: RunningServer, query: str) -> None:
    status, body, _ = await _search(server, "delegate", query)
    assert status == 200
    assert "primer@vep.si" in [e["address"] for e in body["results"]]


@pytest.mark.parametrize("query", [None, "", "a", "  a  ", " "])
async def test_r4_3_query_of_less_than_two_characters_is_400(
    server: RunningServer, query: str | None
) -> None:
    status, body, _ = await _search(server, "reader", query)
    assert (status, body["reason"]) == (400, "query_too_short")


@pytest.mark.parametrize("query", ["%%", "__", "%", "_%_"])
async def test_r4_3_wildcards_do_not_list_everything(server: RunningServer, query: str) -> None:
    status, body, _ = await _search(server, "reader", query.ljust(2, "%"))
    assert status == 200
    assert body["results"] == []


async def test_r4_3_results_are_capped_at_20(server: RunningServer) -> None:
    pool = server.services.pool
    subscriber = await pool.fetchval(
        "SELECT subscriber_id FROM mailboxes WHERE address = $1", "primer@vep.si"
    )
    for i in range(25):
        await pool.execute(
            """INSERT INTO mailboxes (address, local_part, domain, subscriber_id, kind, state,
                                      display_name, directory_listed, admin_password_hash,
                                      created_at)
               VALUES ($1, $2, 'vep.si', $3, 'multi', 'active', $4, true, 'x', now())""",
            f"podruznica{i}@vep.si",
            f"podruznica{i}",
            subscriber,
            f"Primer podružnica {i:02d}",
        )
    status, body, _ = await _search(server, "reader", "primer")
    assert status == 200
    assert len(body["results"]) == 20


async def test_r4_3_rate_limit_per_person_with_retry_after(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url, directory_lookups_per_hour=5)
    async with running_server(settings, dev_pki) as server:
        for _ in range(5):  # one a minute: T0 … T0+4 min
            assert (await _search(server, "reader", "primer"))[0] == 200
            server.clock.advance(timedelta(minutes=1))
        status, body, headers = await _search(server, "reader", "primer")  # at T0+5 min
        assert (status, body["reason"], headers["Retry-After"]) == (429, "rate_limited", "3300")
        # the limit is per person: another person is not affected
        assert (await _search(server, "sender", "primer"))[0] == 200
        server.clock.advance(timedelta(minutes=54, seconds=59))  # T0 + 59:59
        status, _, headers = await _search(server, "reader", "primer")
        assert (status, headers["Retry-After"]) == (429, "1")
        server.clock.advance(timedelta(seconds=1))  # T0 + 1 h: the first lookup has expired
        assert (await _search(server, "reader", "primer"))[0] == 200
        # refused lookups were not counted: exactly that one slot came free
        status, _, headers = await _search(server, "reader", "primer")
        assert (status, headers["Retry-After"]) == (429, "60")


async def test_r4_4_reference_list_is_public_and_opt_in(server: RunningServer) -> None:
    async with server.client(None) as anonymous:
        async with anonymous.get("/reference-list") as r:
            assert r.status == 200
            assert (await r.json())["businesses"] == []
    async with server.client("qualified-qscd") as ana:
        async with ana.patch(
            "/api/v1/mailboxes/primer@vep.si/settings", json={"reference_listed": True}
        ) as r:
            assert r.status == 204
        async with ana.patch(
            "/api/v1/mailboxes/ana.novak@vep.si/settings", json={"reference_listed": True}
        ) as r:
            assert r.status == 422
            assert (await r.json())["errors"] == [
                {"field": "reference_listed", "reason": "businesses_only"}
            ]
    async with server.client(None) as anonymous:
        async with anonymous.get("/reference-list") as r:
            assert (await r.json())["businesses"] == ["Primer d.o.o."]


async def test_settings_reject_unknown_keys_and_bad_certificates(server: RunningServer) -> None:
    async with server.client("qualified-qscd") as ana:
        url = "/api/v1/mailboxes/primer@vep.si/settings"
        async with ana.patch(url, json={"directory_listed": "yes", "colour": "blue"}) as r:
            errors = (await r.json())["errors"]
        assert {"field": "directory_listed", "reason": "type"} in errors
        assert {"field": "colour", "reason": "unknown"} in errors
        signing_only = server.pki.cert("qualified").read_text()
        async with ana.patch(url, json={"encryption_certificate": signing_only}) as r:
            assert (await r.json())["errors"] == [
                {"field": "encryption_certificate", "reason": "key_usage"}
            ]
        async with ana.patch(url, json={"encryption_certificate": "-----BEGIN x"}) as r:
            assert r.status == 422
        async with ana.get(url) as r:
            body = await r.json()
    assert body["directory_listed"] is True and body["encryption_certificate"] is False
