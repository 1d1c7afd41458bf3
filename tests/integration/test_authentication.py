"""R1.1–R1.4, R1.7: every demo person against the real TLS server, directly and via the proxy
header; the live OCSP/CRL service is consulted for every fresh check."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import PkiService
from tests.support import (
    assert_schema,
    audit_head_removed,
    make_settings,
    proxy_header,
    running_server,
    self_signed,
)

pytestmark = pytest.mark.integration

#: person → (status, reason or LoA); `untrusted` differs between direct TLS and proxy.
EXPECTED = {
    "qualified-qscd": (200, "high"),
    "qualified": (200, "substantial"),
    "non-qualified": (403, "not_qualified"),
    "revoked": (403, "revoked"),
    "expired": (403, "expired"),
    "key-usage": (403, "key_usage"),
    "legal-seal": (403, "not_qualified"),  # qct_eseal is not for e-signatures (R1.1)
}


def _outcome(status: int, body: dict[str, object]) -> tuple[int, object]:
    return (status, body["loa"] if status == 200 else body["reason"])


@pytest.mark.parametrize("person", sorted(EXPECTED))
async def test_r1_1_direct_tls_person_outcome(
    person: str, dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client(person) as client:
        async with client.get("/api/v1/session") as response:
            body = await response.json(content_type=None)
            assert _outcome(response.status, body) == EXPECTED[person]
            assert_schema("session" if response.status == 200 else "problem", body)
            if response.status == 403:
                assert response.content_type == "application/problem+json"
                assert body["detail"]
                assert body["status"] == 403
        rows = await server.services.pool.fetch(
            "SELECT actor, action, outcome, details FROM audit_events ORDER BY seq"
        )
    auth_rows = [r for r in rows if r["action"] == "auth.certificate"]
    assert len(auth_rows) == 1
    expected_outcome = "success" if EXPECTED[person][0] == 200 else "refused"
    assert auth_rows[0]["outcome"] == expected_outcome
    if expected_outcome == "refused":
        assert auth_rows[0]["details"]["reason"] == EXPECTED[person][1]


async def test_r1_1_session_body_for_qscd_person(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified-qscd") as c:
        async with c.get("/api/v1/session") as response:
            assert response.status == 200
            body = await response.json()
    assert_schema("session", body)
    assert body["given_name"] == "Ana"
    assert body["surname"] == "Novak"
    assert body["qualified"] is True and body["qscd"] is True
    assert body["loa"] == "high"
    assert body["issuer"].startswith("CN=VEP Dev Qualified CA")
    assert body["not_after"].startswith("2036-01-01")
    assert "serialNumber=PNOSI-1000000001" in body["subject"]
    assert body["validation"]["revocation_source"] == "ocsp"
    assert body["validation"]["anchor"].startswith("CN=VEP Dev Root CA")
    assert body["validation"]["revocation_policy"] == "require"
    # validated at the trust clock's (the system's) time, not the movable business clock
    checked = datetime.fromisoformat(body["checked_at"])
    assert abs((checked - datetime.now(UTC)).total_seconds()) < 30


async def test_r1_1_untrusted_is_refused_in_the_tls_handshake(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Direct TLS cannot answer 403 for an unknown issuer: OpenSSL ends the handshake."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("untrusted") as c:
        with pytest.raises(aiohttp.ClientError):
            async with c.get("/api/v1/session") as response:
                await response.read()
        # nothing reached the application, so nothing was audited
        count = await server.services.pool.fetchval("SELECT count(*) FROM audit_events")
        assert count == 0


async def test_r1_1_no_certificate_is_401(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client(None) as client:
        async with client.get("/api/v1/session") as response:
            assert response.status == 401
            assert response.content_type == "application/problem+json"
            problem = await response.json(content_type=None)
            assert problem["reason"] == "certificate_required"
            assert_schema("problem", problem)
        async with client.get("/", headers={"Accept": "text/html"}) as response:
            assert response.status == 401
            page = await response.text()
            assert response.content_type == "text/html"
            assert "certificate_required" in page


@pytest.mark.parametrize("person", [*sorted(EXPECTED), "untrusted"])
async def test_r1_7_proxy_header_person_outcome(
    person: str, dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Behind nginx (optional_no_ca) every certificate reaches the app and gets its reason."""
    settings = make_settings(
        dev_pki,
        database_url,
        tls=False,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    expected = EXPECTED.get(person, (403, "untrusted"))
    async with running_server(settings, dev_pki) as server, server.client() as client:
        async with client.get("/api/v1/session", headers=proxy_header(dev_pki, person)) as resp:
            assert _outcome(resp.status, await resp.json(content_type=None)) == expected


async def test_r1_7_header_from_untrusted_address_is_ignored(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """A forged X-SSL-Client-Cert from a peer outside VEP_TRUSTED_PROXIES → 401."""
    for tls in (False, True):
        settings = make_settings(
            dev_pki,
            database_url,
            tls=tls,
            trusted_proxies=(ipaddress.ip_network("192.0.2.0/24"),),
        )
        async with running_server(settings, dev_pki) as server, server.client(None) as client:
            headers = proxy_header(dev_pki, "qualified-qscd")
            async with client.get("/api/v1/session", headers=headers) as response:
                assert response.status == 401
                assert (await response.json(content_type=None))["reason"] == (
                    "certificate_required"
                )


async def test_r1_7_proxy_without_header_is_401_and_garbage_is_403(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(
        dev_pki, database_url, tls=False, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    async with running_server(settings, dev_pki) as server, server.client() as client:
        async with client.get("/api/v1/session") as response:
            assert response.status == 401
        bad = {
            "X-SSL-Client-Cert": "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20"
            "CERTIFICATE-----"
        }
        async with client.get("/api/v1/session", headers=bad) as response:
            assert response.status == 403
            assert (await response.json(content_type=None))["reason"] == "malformed"
        async with client.get("/healthz") as response:
            assert response.status == 200


async def test_r1_4_renewed_certificate_maps_to_the_same_person(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        bodies = []
        for identity in ("qualified-qscd", "qualified-qscd-renewed", "qualified"):
            async with server.client(identity) as client, client.get("/api/v1/session") as r:
                assert r.status == 200
                bodies.append(await r.json())
        persons = await server.services.pool.fetchval("SELECT count(*) FROM persons")
        certs = await server.services.pool.fetch(
            "SELECT person_id, serial FROM certificates ORDER BY serial"
        )
    original, renewed, other = bodies
    assert original["person_id"] == renewed["person_id"]
    assert original["serial"] != renewed["serial"]
    assert other["person_id"] != original["person_id"]
    assert persons == 2
    assert len(certs) == 3


async def test_r9_1_a_login_is_recorded_only_with_its_audit_record(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """The person and certificate rows of a successful check commit with its
    auth.certificate record: with the audit chain unable to take it (head row gone), the
    request fails and nothing of the login stays; once the chain is back it is recorded
    with its record (audited apart, a stop between them left a login the trail never
    shows)."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        pool = server.services.pool

        async def recorded() -> tuple[int, int, int]:
            row = await pool.fetchrow(
                """SELECT (SELECT count(*) FROM persons) AS persons,
                          (SELECT count(*) FROM certificates) AS certificates,
                          (SELECT count(*) FROM audit_events
                            WHERE action = 'auth.certificate') AS audited"""
            )
            assert row is not None
            return row["persons"], row["certificates"], row["audited"]

        async with audit_head_removed(pool):
            async with client.get("/api/v1/session") as response:
                assert response.status == 500
            assert await recorded() == (0, 0, 0)
        async with client.get("/api/v1/session") as response:
            assert response.status == 200
        assert await recorded() == (1, 1, 1)


def _self_signed_with_nul() -> str:
    """A self-signed certificate whose common name holds a NUL (a UTF8String may)."""
    _, cert = self_signed("Ana\x00Novak", 7)
    return quote(cert.public_bytes(serialization.Encoding.PEM).decode())


async def test_r1_7_a_certificate_with_a_nul_in_its_name_is_refused_and_audited_once(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Behind the proxy any certificate reaches the application, a hostile name too: it
    is refused (403 ``untrusted``, once audited, then from the cache) and the server stays
    healthy."""
    settings = make_settings(
        dev_pki, database_url, tls=False, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    headers = {"X-SSL-Client-Cert": _self_signed_with_nul()}
    async with running_server(settings, dev_pki) as server, server.client() as client:
        for _ in range(2):
            async with client.get("/api/v1/mailboxes", headers=headers) as response:
                assert response.status == 403
                assert (await response.json())["reason"] == "untrusted"
        async with client.get("/healthz") as response:
            assert response.status == 200
        rows = await server.services.pool.fetch(
            "SELECT details::text AS details FROM audit_events WHERE action = 'auth.certificate'"
        )
    assert len(rows) == 1
    assert '"reason": "untrusted"' in rows[0]["details"]
