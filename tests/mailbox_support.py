"""Flows of the mailbox tests: register (with a real qualified signature), add delegates."""

from __future__ import annotations

from typing import Any

import aiohttp

from server.http.context import SESSION_COOKIE
from server.tools.sign import async_sign_cades_detached, async_sign_pades
from tests.support import RunningServer

PASSWORD = "correct horse battery staple"
ADDRESS = {"street": "Dunajska cesta 1", "postcode": "1000", "city": "Ljubljana"}


def natural(local_part: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "natural",
        "local_part": local_part,
        "tax_number": "10000003",
        "postal_address": ADDRESS,
        "email": "ana@example.si",
        "birth_date": "1990-05-17",
        "accept_terms": True,
        "accept_price_list": True,
        "admin_password": PASSWORD,
    }
    body.update(overrides)
    return body


def legal(local_part: str, **overrides: Any) -> dict[str, Any]:
    """Primer d.o.o. from the business register fixture; Ana Novak represents it."""
    body: dict[str, Any] = {
        "kind": "legal",
        "local_part": local_part,
        "registration_number": "2345676",
        "tax_number": "23456787",
        "name": "Primer d.o.o.",
        "iban": "SI56 1910 0000 0123 438",
        "vat_payer": True,
        "postal_address": ADDRESS,
        "email": "info@primer.si",
        "accept_terms": True,
        "accept_price_list": True,
        "admin_password": PASSWORD,
    }
    body.update(overrides)
    return body


async def sign(server: RunningServer, identity: str, pdf: bytes, how: str) -> bytes:
    p12 = server.pki.p12(identity).read_bytes()
    if how == "pades":
        return await async_sign_pades(pdf, p12, b"vep")
    return await async_sign_cades_detached(pdf, p12, b"vep")


async def start(client: aiohttp.ClientSession, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with client.post("/api/v1/registrations", json=body) as response:
        return response.status, await response.json(content_type=None)


async def contract(client: aiohttp.ClientSession, started: dict[str, Any]) -> bytes:
    async with client.get(started["contract"]) as response:
        assert response.status == 200
        assert response.content_type == "application/pdf"
        return await response.read()


async def put_signed(
    client: aiohttp.ClientSession, started: dict[str, Any], signed: bytes, how: str
) -> tuple[int, dict[str, Any]]:
    content_type = "application/pdf" if how == "pades" else "application/pkcs7-signature"
    async with client.put(
        started["sign_at"], data=signed, headers={"Content-Type": content_type}
    ) as response:
        return response.status, await response.json(content_type=None)


async def open_mailbox(
    server: RunningServer,
    identity: str,
    body: dict[str, Any],
    how: str = "pades",
    signer: str | None = None,
) -> dict[str, Any]:
    """Register, sign the issued contract with ``signer``'s key, and return the result."""
    async with server.client(identity) as client:
        status, started = await start(client, body)
        assert status == 201, started
        pdf = await contract(client, started)
        signed = await sign(server, signer or identity, pdf, how)
        status, opened = await put_signed(client, started, signed, how)
        assert status == 201, opened
        return opened


async def add_delegate(
    server: RunningServer,
    custodian: str,
    address: str,
    delegate: str,
    permissions: list[str],
    password: str = PASSWORD,
) -> tuple[int, dict[str, Any]]:
    body = {
        "certificate": server.pki.cert(delegate).read_text(),
        "permissions": permissions,
        "admin_password": password,
    }
    async with server.client(custodian) as client:
        async with client.post(f"/api/v1/mailboxes/{address}/delegates", json=body) as r:
            return r.status, await r.json(content_type=None)


async def open_delivery_world(server: RunningServer) -> None:
    """The parties of the delivery tests: Primer d.o.o. (primer@vep.si, Ana, LoA high), made
    a public body by an operator; Dejan (dejan@vep.si, LoA high); Bojan (bojan@vep.si, LoA
    substantial)."""
    await open_mailbox(server, "qualified-qscd", legal("primer"))
    await open_mailbox(server, "delegate", natural("dejan", tax_number="12345679"))
    await open_mailbox(server, "qualified", natural("bojan", tax_number="23456787"))
    await server.services.operator.set_public_body("primer@vep.si", True, "maja")


def person_id(server: RunningServer, identity: str) -> str:
    from server.trust.certs import parse

    return parse(server.pki.cert(identity).read_bytes())[1].person_id


#: The members of primer@vep.si in the world of the role × endpoint tests.
DELEGATES = {
    "reader": ["read"],
    "sender": ["send"],
    "acceptor": ["accept"],
    "manager": ["manage"],
    "qualified": ["read", "send", "accept", "manage"],  # Bojan: LoA substantial
    "former": ["read"],  # removed again below
}
WORLD_ADDRESS = "primer@vep.si"
PENDING_EMAIL = "pending@primer.si"


async def build_world(server: RunningServer) -> tuple[str, str]:
    """Primer d.o.o.'s mailbox: Ana custodian, one delegate per permission, Bojan (LoA
    substantial) with every permission, Luka added and — while his browser session was
    open — removed, one unconfirmed notification address.

    Returns Luka's session cookie and its CSRF token, so the tests can go on using the
    session he opened before the removal."""
    opened = await open_mailbox(server, "qualified-qscd", legal("primer"))
    assert opened["address"] == WORLD_ADDRESS and opened["state"] == "active"
    for identity, permissions in DELEGATES.items():
        status, body = await add_delegate(
            server, "qualified-qscd", WORLD_ADDRESS, identity, permissions
        )
        assert status == 201, body
    async with server.client("former") as luka, luka.get("/api/v1/session") as r:
        assert r.status == 200
        csrf = (await r.json())["csrf_token"]
        cookie = r.cookies[SESSION_COOKIE].value
        async with luka.get(f"/api/v1/mailboxes/{WORLD_ADDRESS}") as before:
            assert before.status == 200  # a member until now
    async with server.client("qualified-qscd") as client:
        former = person_id(server, "former")
        async with client.delete(f"/api/v1/mailboxes/{WORLD_ADDRESS}/delegates/{former}") as r:
            assert r.status == 204
        async with client.post(
            f"/api/v1/mailboxes/{WORLD_ADDRESS}/notification-addresses",
            json={"email": PENDING_EMAIL},
        ) as r:
            assert r.status == 202
    return cookie, csrf


def sample_contract_pdf() -> bytes:
    """A contract PDF as the server renders one (for signing tools and sender signatures)."""
    from datetime import UTC, datetime

    from server.contracts.render import ContractData, render_contract

    return render_contract(
        ContractData(
            registration_id="r",
            terms_version="t",
            issued_at=datetime.now(UTC),
            kind="natural",
            name="Ana Novak",
            tax_number="10000003",
            registration_number=None,
            vat_payer=None,
            iban=None,
            postal_address={"street": "a", "postcode": "1000", "city": "b", "country": "SI"},
            email="a@b.si",
            mailbox_address="ana@vep.si",
            mailbox_kind="single",
            einvoice=False,
            price_list=(("x", "1"),),
        )
    )
