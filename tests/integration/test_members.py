"""R3.1, R3.2, R1.5, R1.6: every role against every mailbox endpoint, each cell asserted.

The world (tests.mailbox_support.build_world) is built once through the real API and kept
as a template database; every cell runs on its own clone, so a cell that changes the
mailbox cannot influence another.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from yarl import URL

from server.http.context import SESSION_COOKIE
from tests.conftest import PkiService, with_database
from tests.mailbox_support import (
    PASSWORD,
    PENDING_EMAIL,
    WORLD_ADDRESS,
    build_world,
    natural,
    person_id,
)
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration

ROLES = [
    "qualified-qscd",
    "reader",
    "sender",
    "acceptor",
    "manager",
    "qualified",
    "delegate",
    "former",
]
CUSTODIAN = {"qualified-qscd"}
MANAGERS = {"qualified-qscd", "manager", "qualified"}
OUTSIDERS = {"delegate", "former"}  # Dejan never was a member; Luka was removed
#: Luka's session cookie and CSRF token, from a session opened before his removal.
FORMER_SESSION: list[str] = []


def client_for(server: RunningServer, role: str):  # type: ignore[no-untyped-def]
    """A client of ``role``; Luka ("former") goes on in the session he opened before."""
    client = server.client(role)
    if role == "former":
        cookie, csrf = FORMER_SESSION
        client.cookie_jar.update_cookies({SESSION_COOKIE: cookie}, URL(server.url))
        client.headers["X-CSRF-Token"] = csrf
    return client


@pytest.fixture(scope="session")
async def world_template(
    pg_admin_url: str, template_url: str, dev_pki, pki_service: PkiService
) -> AsyncIterator[tuple[str, tuple[str, str]]]:
    name = f"vep_world_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    template = urlsplit(template_url).path.lstrip("/")
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        settings = make_settings(dev_pki, with_database(pg_admin_url, name))
        async with running_server(settings, dev_pki) as server:
            former_session = await build_world(server)
        yield name, former_session
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def world(
    pg_admin_url: str,
    world_template: tuple[str, tuple[str, str]],
    dev_pki,
    pki_service: PkiService,
) -> AsyncIterator[RunningServer]:
    name = f"vep_cell_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{world_template[0]}"')
    FORMER_SESSION[:] = world_template[1]
    try:
        settings = make_settings(dev_pki, with_database(pg_admin_url, name))
        async with running_server(settings, dev_pki) as server:
            yield server
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _refusal(role: str, allowed: set[str], missing: str) -> tuple[int, str]:
    if role in OUTSIDERS:
        return (403, "not_member")
    return (403, missing)


def expected(role: str, endpoint: str) -> tuple[int, str | None]:
    member = role not in OUTSIDERS
    if endpoint == "show":
        return (200, None) if member else (403, "not_member")
    if endpoint in ("add_delegate", "patch_delegate", "remove_delegate", "transfer_custody"):
        ok = {
            "add_delegate": 201,
            "patch_delegate": 204,
            "remove_delegate": 204,
            "transfer_custody": 204,
        }[endpoint]
        return (ok, None) if role in CUSTODIAN else _refusal(role, CUSTODIAN, "not_custodian")
    if endpoint == "directory":
        return (200, None)  # every logged-in person, member or not (R4.1)
    if endpoint == "register":
        return (201, None)  # anyone with a qualified certificate may open a mailbox
    if endpoint == "enroll":
        return (204, None) if member else (403, "not_member")
    if endpoint == "closure_request":  # R8.3: only the custodian asks to close
        return (200, None) if role in CUSTODIAN else _refusal(role, CUSTODIAN, "not_custodian")
    if endpoint == "close":  # an empty body is no signature: refused, nothing closes
        if role in CUSTODIAN:
            return (422, "signature_malformed")
        return _refusal(role, CUSTODIAN, "not_custodian")
    settings_ok = {
        "get_settings": 200,
        "patch_settings": 204,
        "add_address": 202,
        "confirm_address": 422,
        "remove_address": 204,
    }
    if endpoint in settings_ok:
        if role in MANAGERS:
            return (
                settings_ok[endpoint],
                "invalid_fields" if endpoint == "confirm_address" else None,
            )
        return _refusal(role, MANAGERS, "permission_required")
    raise AssertionError(endpoint)


def request_for(server: RunningServer, endpoint: str) -> tuple[str, str, dict[str, Any] | None]:
    base = f"/api/v1/mailboxes/{WORLD_ADDRESS}"
    reader = person_id(server, "reader")
    return {
        "show": ("GET", base, None),
        "add_delegate": (
            "POST",
            f"{base}/delegates",
            {
                "certificate": server.pki.cert("newcomer").read_text(),
                "permissions": ["read"],
                "admin_password": PASSWORD,
            },
        ),
        "patch_delegate": (
            "PATCH",
            f"{base}/delegates/{reader}",
            {"permissions": ["read", "send"]},
        ),
        "remove_delegate": ("DELETE", f"{base}/delegates/{reader}", None),
        "transfer_custody": (
            "POST",
            f"{base}/custodian",
            {"person_id": person_id(server, "manager"), "admin_password": PASSWORD},
        ),
        "enroll": ("POST", f"{base}/certificates", {"admin_password": PASSWORD}),
        "get_settings": ("GET", f"{base}/settings", None),
        "patch_settings": ("PATCH", f"{base}/settings", {"directory_listed": False}),
        "add_address": ("POST", f"{base}/notification-addresses", {"email": "board@primer.si"}),
        "confirm_address": (
            "POST",
            f"{base}/notification-addresses/{PENDING_EMAIL}/confirm",
            {"code": "000000"},
        ),
        "remove_address": ("DELETE", f"{base}/notification-addresses/{PENDING_EMAIL}", None),
        "directory": ("GET", "/api/v1/directory?q=primer", None),
        "closure_request": ("GET", f"{base}/closure-request", None),
        "close": ("POST", f"{base}/closure", None),
        "register": ("POST", "/api/v1/registrations", natural("novi.predal")),
    }[endpoint]


ENDPOINTS = [
    "show",
    "add_delegate",
    "patch_delegate",
    "remove_delegate",
    "transfer_custody",
    "enroll",
    "get_settings",
    "patch_settings",
    "add_address",
    "confirm_address",
    "remove_address",
    "directory",
    "register",
    "closure_request",
    "close",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("role", ROLES)
async def test_r3_2_role_endpoint_matrix(world: RunningServer, role: str, endpoint: str) -> None:
    method, path, body = request_for(world, endpoint)
    before = await world.services.pool.fetchval("SELECT count(*) FROM audit_events")
    async with client_for(world, role) as client:
        async with client.request(method, path, json=body) as response:
            status = response.status
            json_body = status != 204 and response.content_type == "application/problem+json"
            json_body = json_body or response.content_type == "application/json"
            payload = await response.json(content_type=None) if json_body else None
    want_status, want_reason = expected(role, endpoint)
    assert status == want_status, payload
    if want_reason is not None:
        assert payload is not None and payload["reason"] == want_reason
    if status >= 400 and want_reason not in ("invalid_fields",):
        # a refusal changes nothing: only the login itself was audited
        actions = await world.services.pool.fetch(
            "SELECT action FROM audit_events WHERE seq > $1", before
        )
        assert {a["action"] for a in actions} <= {"auth.certificate"}


@pytest.mark.parametrize("role", ROLES)
async def test_r1_6_mailbox_list_per_role(world: RunningServer, role: str) -> None:
    async with client_for(world, role) as client, client.get("/api/v1/mailboxes") as response:
        assert response.status == 200
        mailboxes = (await response.json())["mailboxes"]
    if role in OUTSIDERS:
        assert mailboxes == []
    else:
        [mine] = mailboxes
        assert mine["address"] == WORLD_ADDRESS
        assert mine["role"] == ("custodian" if role in CUSTODIAN else "delegate")
        assert mine["certificate_enrolled"] is True


@pytest.mark.parametrize("role", ROLES)
async def test_r3_2_members_list_only_for_managers(world: RunningServer, role: str) -> None:
    async with client_for(world, role) as client:
        async with client.get(f"/api/v1/mailboxes/{WORLD_ADDRESS}") as response:
            body = await response.json(content_type=None)
    if role in OUTSIDERS:
        assert response.status == 403
        return
    assert ("members" in body) is (role in MANAGERS)
    if role in MANAGERS:
        assert {m["person_id"] for m in body["members"]} == {
            person_id(world, r) for r in ROLES if r not in OUTSIDERS
        }
