"""R1.3 and R1.6: browser sessions bound to the certificate, idle timeout, logout, CSRF,
and revalidation that ends a session whose certificate was revoked meanwhile."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from yarl import URL

from server.http.context import SESSION_COOKIE
from tests.conftest import PkiService
from tests.support import RunningServer, audit_head_removed, make_settings, running_server

pytestmark = pytest.mark.integration


async def _login(server: RunningServer, client) -> dict:  # type: ignore[no-untyped-def]
    async with client.get("/api/v1/session") as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_r1_6_cookie_is_secure_httponly_strict(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        async with client.get("/api/v1/session") as response:
            cookie = response.cookies[SESSION_COOKIE]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["domain"] == ""


async def test_r1_6_idle_timeout_at_30_minutes(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        first = await _login(server, client)
        server.clock.advance(timedelta(minutes=29, seconds=59))
        second = await _login(server, client)  # still the same session: activity refreshes it
        assert second["csrf_token"] == first["csrf_token"]
        server.clock.advance(timedelta(minutes=30))
        async with client.get("/api/v1/session") as response:
            assert response.status == 401
            assert (await response.json(content_type=None))["reason"] == "session_expired"
        # the cookie was cleared: the next request starts a fresh session (a new login)
        third = await _login(server, client)
        assert third["csrf_token"] != first["csrf_token"]
        reasons = await server.services.pool.fetch(
            "SELECT end_reason FROM sessions WHERE ended_at IS NOT NULL"
        )
    assert [r["end_reason"] for r in reasons] == ["idle"]


async def test_r1_6_logout_needs_csrf_token_and_ends_the_session(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        me = await _login(server, client)
        async with client.post("/logout") as response:
            assert response.status == 403
            assert (await response.json(content_type=None))["reason"] == "csrf"
        async with client.post("/logout", headers={"X-CSRF-Token": "wrong"}) as response:
            assert response.status == 403
        # still logged in after the refused attempts
        assert (await _login(server, client))["csrf_token"] == me["csrf_token"]
        token = client.cookie_jar.filter_cookies(URL(server.url))[SESSION_COOKIE].value
        async with client.post("/logout", headers={"X-CSRF-Token": me["csrf_token"]}) as r:
            assert r.status == 204
        # a replay of the old cookie is refused
        client.cookie_jar.update_cookies({SESSION_COOKIE: token})
        async with client.get("/api/v1/session") as response:
            assert response.status == 401
            assert (await response.json(content_type=None))["reason"] == "session_ended"
        actions = await server.services.pool.fetch(
            "SELECT action, details FROM audit_events WHERE action LIKE 'session.%' ORDER BY seq"
        )
    assert [a["action"] for a in actions] == ["session.start", "session.end"]
    assert actions[1]["details"]["reason"] == "logout"


async def test_r1_6_html_logout_form_posts_csrf_field(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified-qscd") as c:
        async with c.get("/", headers={"Accept": "text/html"}) as response:
            page = await response.text()
            assert response.status == 200
            assert 'id="loa">high<' in page
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        async with c.post(
            "/logout",
            data={"csrf_token": token},
            headers={"Accept": "text/html"},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/logged-out"


async def test_r1_6_cross_site_post_is_refused_even_without_session(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        async with client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"}) as response:
            assert response.status == 403
            assert (await response.json(content_type=None))["reason"] == "csrf"
        headers = {"Origin": "https://evil.example"}
        async with client.post("/logout", headers=headers) as response:
            assert response.status == 403


async def test_r1_6_session_cookie_is_bound_to_its_certificate(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        async with server.client("qualified-qscd") as alice:
            await _login(server, alice)
            stolen = alice.cookie_jar.filter_cookies(URL(server.url))[SESSION_COOKIE].value
        async with server.client("qualified") as bojan:
            bojan.cookie_jar.update_cookies({SESSION_COOKIE: stolen})
            async with bojan.get("/api/v1/session") as response:
                assert response.status == 401
                body = await response.json(content_type=None)
                assert body["reason"] == "session_certificate_mismatch"
        reason = await server.services.pool.fetchval("SELECT end_reason FROM sessions")
    assert reason == "certificate_mismatch"


async def test_r1_3_revoked_meanwhile_ends_session_at_revalidation(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Revoke at the running OCSP/CRL service; the session ends at the next revalidation."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("revocable") as client:
        await _login(server, client)
        pki_service.revoke("revocable")
        server.clock.advance(timedelta(minutes=14, seconds=59))
        # within the interval the check made at login stands (R1.3: checked per interval)
        await _login(server, client)
        server.clock.advance(timedelta(seconds=1))
        async with client.get("/api/v1/session") as response:
            assert response.status == 403
            body = await response.json(content_type=None)
            assert body["reason"] == "revoked"
            assert body["revocation_reason"] == "key_compromise"
        async with client.get("/api/v1/session") as response:
            assert response.status == 401  # the session row was ended at the refusal
        ended = await server.services.pool.fetchval(
            "SELECT end_reason FROM sessions WHERE ended_at IS NOT NULL"
        )
        refusal = await server.services.pool.fetchrow(
            "SELECT details FROM audit_events WHERE outcome = 'refused' ORDER BY seq LIMIT 1"
        )
    assert ended == "revoked"
    assert refusal is not None and refusal["details"]["reason"] == "revoked"


async def test_r1_6_activity_is_recorded_to_the_minute_and_never_extends_the_timeout(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """A request within a minute of the recorded activity writes nothing; so the idle
    timeout counts from the recorded one and may end a session up to a minute early,
    never late."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:

        async def last_seen():  # type: ignore[no-untyped-def]
            return await server.services.pool.fetchval("SELECT last_seen_at FROM sessions")

        first = await _login(server, client)
        opened = await last_seen()
        server.clock.advance(timedelta(seconds=59))
        await _login(server, client)
        assert await last_seen() == opened  # 59 s later: not written
        server.clock.advance(timedelta(seconds=1))
        await _login(server, client)
        recorded = await last_seen()
        assert recorded - opened == timedelta(minutes=1)  # a minute later: written
        server.clock.advance(timedelta(seconds=59))
        assert (await _login(server, client))["csrf_token"] == first["csrf_token"]
        # 30 minutes after the recorded activity (29:01 after the last request): over
        server.clock.advance(timedelta(minutes=29, seconds=1))
        async with client.get("/api/v1/session") as response:
            assert response.status == 401
            assert (await response.json(content_type=None))["reason"] == "session_expired"


async def test_r9_1_a_session_starts_and_ends_only_with_its_audit_record(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """With the audit chain unable to take a record (its head row gone), no session is
    opened and none is ended: audited apart, a stop between the two left a login or a
    logout that the audit trail never shows."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        pool = server.services.pool

        async def counts() -> tuple[int, int, int]:
            row = await pool.fetchrow(
                """SELECT (SELECT count(*) FROM sessions) AS opened,
                          (SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL) AS ended,
                          (SELECT count(*) FROM audit_events
                            WHERE action LIKE 'session.%') AS audited"""
            )
            assert row is not None
            return row["opened"], row["ended"], row["audited"]

        async def without_audit_head(request):  # type: ignore[no-untyped-def]
            async with audit_head_removed(pool):
                return await request()

        async def session() -> int:
            async with client.get("/api/v1/session") as response:
                return response.status

        # the certificate's check made (and audited) first, so the request reaches the start
        pem = server.pki.cert("qualified").read_bytes()
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        await server.services.authenticator.authenticate(der, None)
        assert await without_audit_head(session) == 500
        assert await counts() == (0, 0, 0)
        me = await _login(server, client)
        assert await counts() == (1, 0, 1)

        async def logout() -> int:
            headers = {"X-CSRF-Token": me["csrf_token"]}
            async with client.post("/logout", headers=headers) as response:
                return response.status

        assert await without_audit_head(logout) == 500
        assert await counts() == (1, 0, 1)  # still open, as the trail says
        assert await logout() == 204
        assert await counts() == (1, 1, 2)


async def test_r1_6_a_short_idle_time_records_activity_more_finely(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """With a 60 s idle time the minute step would never record a request, and a busy
    session would end 60 s after login: the step is at most a 30th of the idle time."""
    settings = make_settings(dev_pki, database_url, session_idle_seconds=60)
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        first = await _login(server, client)
        for _ in range(6):  # three minutes of a request every 30 s
            server.clock.advance(timedelta(seconds=30))
            assert (await _login(server, client))["csrf_token"] == first["csrf_token"]
        server.clock.advance(timedelta(seconds=60))
        async with client.get("/api/v1/session") as response:
            assert (await response.json(content_type=None))["reason"] == "session_expired"


async def test_r1_3_a_session_starts_with_a_fresh_check(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """R1.3 "on session start": a login (the API's or the home page's) checks the
    certificate afresh even when this node checked it a minute ago; requests without a
    session, and requests in one, use the check of the interval. Each fresh check is an
    ``auth.certificate`` record."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        pool = server.services.pool

        async def checks() -> int:
            return int(
                await pool.fetchval(
                    """SELECT count(*) FROM audit_events
                        WHERE action = 'auth.certificate' AND outcome = 'success'"""
                )
            )

        async with server.client("qualified") as program:
            for _ in range(2):
                async with program.get("/api/v1/mailboxes") as response:
                    assert response.status == 200
            assert await checks() == 1  # the second request used the node's check
            server.clock.advance(timedelta(minutes=1))
            await _login(server, program)
            assert await checks() == 2
            await _login(server, program)  # in the session: the interval's check
            assert await checks() == 2
        async with (
            server.client("qualified") as browser,
            browser.get("/", headers={"Accept": "text/html"}) as response,
        ):
            assert response.status == 200
            assert SESSION_COOKIE in response.cookies
        assert await checks() == 3


async def test_r1_6_another_sites_page_cannot_start_a_session(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """The client certificate is ambient: an ``<img src>``, ``fetch()`` or hidden
    ``<iframe>`` on another site's page (``Sec-Fetch-Site`` cross-site or same-site, any
    request but a top-level navigation to a document) would start a
    session — an audited record and, R1.3, a fresh certificate check with a live OCSP
    fetch — for every request it makes. It is refused (403 ``csrf``) before any check. A
    link followed from elsewhere (``navigate``), an address typed (``none``), our own
    pages and programs (no header) still log in."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        pool = server.services.pool

        async def recorded() -> tuple[int, int]:
            row = await pool.fetchrow(
                """SELECT (SELECT count(*) FROM sessions) AS sessions,
                          (SELECT count(*) FROM audit_events
                            WHERE action = 'auth.certificate') AS checks"""
            )
            return int(row["sessions"]), int(row["checks"])

        async with server.client("qualified") as client:
            for path, accept in (("/api/v1/session", "*/*"), ("/", "text/html")):
                for site in ("cross-site", "same-site"):
                    embedded = [("no-cors", "image"), ("cors", "empty")]
                    embedded += [("navigate", d) for d in ("iframe", "frame", "object", "embed")]
                    for mode, dest in embedded:
                        headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode}
                        headers |= {"Sec-Fetch-Dest": dest, "Accept": accept}
                        async with client.get(path, headers=headers) as response:
                            assert response.status == 403, (path, site, mode, dest)
                            if path.startswith("/api/"):
                                assert (await response.json())["reason"] == "csrf"
                            else:  # a readable page, not JSON
                                assert response.content_type == "text/html"
                            assert SESSION_COOKIE not in response.cookies
            assert await recorded() == (0, 0)
        started = 0
        for path in ("/api/v1/session", "/"):
            for headers in (
                {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
                {
                    "Sec-Fetch-Site": "cross-site",
                    "Sec-Fetch-Mode": "navigate",
                    "Sec-Fetch-Dest": "document",
                },
                {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"},
                {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"},
                {},
            ):
                async with (
                    server.client("qualified") as client,
                    client.get(path, headers={**headers, "Accept": "text/html"}) as response,
                ):
                    assert response.status == 200, (path, headers)
                    assert SESSION_COOKIE in response.cookies
                started += 1
                assert (await recorded())[0] == started
