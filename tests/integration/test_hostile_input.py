"""Bad input gets a clear 4xx problem and changes nothing (house rule; R5.7, R7.4, R9.1).

Each case here was a 500 before (found by an input review): text PostgreSQL or UTF-8
cannot hold (NUL, unpaired surrogates), JSON too deep or with numbers too long, malformed
multipart bodies, a cursor at the calendar's edge, a hostile ``Origin``, a PDF with an
absurd ``/ByteRange``, and a file name with CR/LF — which sealed a handover and then
failed the download's header. Every case also checks that nothing was written and that
error answers carry the security headers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any

import aiohttp
import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore
from yarl import URL

from server.logs import JsonFormatter
from tests.integration.test_deliveries import COURT, DEJAN, PDF, _state, send
from tests.mailbox_support import natural
from tests.support import RunningServer, self_signed

pytestmark = pytest.mark.integration

DELIVERIES = f"/api/v1/mailboxes/{COURT}/deliveries"


async def request(
    server: RunningServer, method: str, path: str, who: str = "qualified-qscd", **kwargs: Any
) -> tuple[int, Any, Any]:
    async with server.client(who) as client:
        url = URL(path, encoded=True)
        async with client.request(method, url, **kwargs) as response:
            raw = await response.read()
            body = json.loads(raw) if response.content_type.endswith("json") else raw
            return response.status, body, response.headers


def multipart(meta: bytes, name: str = "c.pdf", extra: bytes = b"") -> bytes:
    return (
        b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        + meta
        + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; '
        + name.encode()
        + b"\r\nContent-Type: application/pdf\r\n"
        + extra
        + b"\r\n"
        + PDF
        + b"\r\n--b--\r\n"
    )


MULTIPART = {"Content-Type": "multipart/form-data; boundary=b"}
META = json.dumps({"to": [DEJAN], "subject": "x", "kind": "registered"}).encode()


async def assert_refused(
    server: RunningServer, got: tuple[int, Any, Any], status: int, reason: str
) -> None:
    code, body, headers = got
    assert (code, body["reason"]) == (status, reason), body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert headers["X-Content-Type-Options"] == "nosniff"  # error answers get them too
    assert headers["Cache-Control"] == "no-store"
    async with server.client() as client, client.get("/healthz") as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("filename*=UTF-8''a%0D%0Ab.pdf", "bad_filename"),  # CR LF
        ("filename*=UTF-8''a%01b.pdf", "bad_filename"),  # a control XML cannot carry
        ("filename*=UTF-8''a%C2%85b.pdf", "bad_filename"),  # NEL, a C1 control
        ("filename*=UTF-8''racun%E2%80%AEfdp.exe", "bad_filename"),  # RIGHT-TO-LEFT OVERRIDE
        ("filename*=UTF-8''sod%E2%80%8Bba.pdf", "bad_filename"),  # ZERO WIDTH SPACE
        ("filename*=UTF-8''a%E2%80%A8b.pdf", "bad_filename"),  # LINE SEPARATOR
    ],
)
async def test_a_file_name_that_cannot_be_kept_is_refused(
    server: RunningServer, name: str, reason: str
) -> None:
    before = await _state(server)
    got = await request(server, "POST", DELIVERIES, data=multipart(META, name), headers=MULTIPART)
    await assert_refused(server, got, 422, "invalid_fields")
    assert got[1]["errors"] == [{"field": "file[0]", "reason": reason}]
    assert await _state(server) == before


async def test_an_odd_stored_name_is_downloaded_with_a_valid_header(
    server: RunningServer,
) -> None:
    """A name kept before the refusal above (or sent as plain UTF-8 with quotes and a
    backslash): the header has an ASCII fallback and the exact name in filename*, and the
    handover is sealed once, for a download that happened."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    did = sent["delivery_id"]
    await server.services.pool.execute(
        "UPDATE delivery_parts SET name = $2 WHERE delivery_id = $1::uuid",
        did,
        'sodba "a"\\\r\nč.pdf',
    )
    status, body, headers = await request(
        server, "GET", f"/api/v1/deliveries/{did}/parts/0", "delegate"
    )
    assert (status, body) == (200, PDF)
    # a streamed answer has the security headers too (set as it is prepared)
    assert (headers["Cache-Control"], headers["X-Content-Type-Options"]) == ("no-store", "nosniff")
    assert headers["Content-Disposition"] == (
        'attachment; filename="sodba _a_____.pdf"; '
        "filename*=UTF-8''sodba%20%22a%22%5C%0D%0A%C4%8D.pdf"
    )
    handovers = await server.services.pool.fetchval(
        "SELECT count(*) FROM evidence WHERE event = 'ContentHandover'"
    )
    assert handovers == 1


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        (b'{"to": ["dejan@vep.si"], "subject": "a\\u0000", "kind": "registered"}', "invalid_text"),
        (b'{"to": ["dejan@vep.si"], "subject": "\\ud800", "kind": "registered"}', "invalid_text"),
        (b'{"to": ["dejan@vep.si\\u0000"], "subject": "x", "kind": "registered"}', "invalid_text"),
        (b'{"subject": 1' + b"0" * 5000 + b"}", "malformed_json"),
    ],
    ids=["nul", "surrogate", "nul-address", "long-number"],
)
async def test_metadata_with_text_that_cannot_be_kept_is_refused_before_the_upload(
    server: RunningServer, meta: bytes, reason: str
) -> None:
    before = await _state(server)
    got = await request(server, "POST", DELIVERIES, data=multipart(meta), headers=MULTIPART)
    await assert_refused(server, got, 400, reason)
    assert await _state(server) == before


async def test_an_admin_password_that_is_no_text_counts_no_try(server: RunningServer) -> None:
    """R1.5: a try is counted (and audited) only for a password that is text."""
    audited = await server.services.pool.fetchval("SELECT count(*) FROM audit_events")
    for raw in (b'{"admin_password": "\\ud800", "permissions": []}', b"[" * 100_000):
        got = await request(
            server,
            "POST",
            f"/api/v1/mailboxes/{COURT}/delegates",
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        await assert_refused(
            server, got, 400, "invalid_text" if raw[0] == 123 else "malformed_json"
        )
    assert await server.services.pool.fetchval("SELECT count(*) FROM audit_events") == audited


async def test_registration_refuses_nul_a_strange_charset_and_year_9999(
    server: RunningServer,
) -> None:
    counts = await server.services.pool.fetchval("SELECT count(*) FROM registrations")
    body = natural("nova", postal_address={"street": "a\u0000", "postcode": "1000", "city": "X"})
    got = await request(server, "POST", "/api/v1/registrations", "qualified", json=body)
    await assert_refused(server, got, 400, "invalid_text")
    got = await request(
        server,
        "POST",
        "/api/v1/registrations",
        "qualified",
        data=json.dumps(natural("nova")).encode(),
        headers={"Content-Type": "application/json; charset=x-no-such"},
    )
    await assert_refused(server, got, 400, "malformed_json")
    body = natural("nova", birth_date="9999-12-31")
    got = await request(server, "POST", "/api/v1/registrations", "qualified", json=body)
    await assert_refused(server, got, 422, "invalid_fields")
    assert {"field": "birth_date", "reason": "under_age"} in got[1]["errors"]
    assert await server.services.pool.fetchval("SELECT count(*) FROM registrations") == counts


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/mailboxes/a%00b/inbox",
        "/api/v1/directory?q=ab%00",
        f"/api/v1/mailboxes/{COURT}/inbox?after=a%00",
    ],
)
async def test_nul_in_the_address_is_refused_before_any_handler(
    server: RunningServer, path: str
) -> None:
    got = await request(server, "GET", path)
    await assert_refused(server, got, 400, "invalid_text")
    assert await server.services.pool.fetchval("SELECT count(*) FROM directory_lookups") == 0


async def test_a_cursor_at_the_calendars_edge_is_a_bad_cursor(server: RunningServer) -> None:
    raw = b"0001-01-01T00:00:00+05:00|00000000-0000-0000-0000-000000000000"
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    got = await request(server, "GET", f"/api/v1/mailboxes/{COURT}/inbox?after={cursor}")
    await assert_refused(server, got, 400, "bad_cursor")
    naive = base64.urlsafe_b64encode(raw.replace(b"+05:00", b"")).decode().rstrip("=")
    got = await request(server, "GET", f"/api/v1/mailboxes/{COURT}/inbox?after={naive}")
    await assert_refused(server, got, 400, "bad_cursor")


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        (DELIVERIES, b"hello", "multipart/form-data; boundary=x"),
        (DELIVERIES, multipart(META, 'filename="c.pdf"', b"Content-Length: -1\r\n"), None),
        ("/api/v1/validate", b"hello", "multipart/form-data"),
        ("/api/v1/validate", b"hello", "multipart/form-data; boundary=x"),
    ],
    ids=["no-start-boundary", "negative-part-length", "validate-no-boundary", "validate-junk"],
)
async def test_malformed_multipart_is_a_clear_400(
    server: RunningServer, path: str, body: bytes, content_type: str | None
) -> None:
    before = await _state(server)
    headers = {"Content-Type": content_type} if content_type else MULTIPART
    got = await request(server, "POST", path, data=body, headers=headers)
    await assert_refused(server, got, 400, "malformed_multipart")
    assert await _state(server) == before


async def test_a_pdf_with_an_absurd_byte_range_is_reported_not_crashed(
    server: RunningServer,
) -> None:
    pdf = b"%PDF-1.7\n/ByteRange [0 1 2 " + b"9" * 5000 + b"]\n%%EOF\n"
    status, report, _ = await request(
        server, "POST", "/api/v1/validate", data=pdf, headers={"Content-Type": "application/pdf"}
    )
    assert status == 200, report
    assert report["intact"] is False


async def test_an_origin_that_is_no_url_is_refused_as_cross_origin(server: RunningServer) -> None:
    got = await request(
        server,
        "POST",
        "/api/v1/validate",
        data=b"x",
        headers={"Origin": "http://[", "Content-Type": "application/pdf"},
    )
    await assert_refused(server, got, 403, "csrf")


async def _signed_by_a_name_with_a_nul(content: bytes) -> bytes:
    """A detached CAdES over ``content`` by a self-made certificate whose serialNumber (a
    PrintableString) holds a NUL: pyca/cryptography cannot read it, so the report names the
    signer as asn1crypto renders it, NUL and all."""
    key, made = self_signed("Ana", 9)
    plain = asn1_x509.Certificate.load(made.public_bytes(serialization.Encoding.DER))
    tbs = plain["tbs_certificate"].copy()
    hostile = asn1_x509.Name.build({"common_name": "Ana", "serial_number": "PNOSI-\x001"})
    tbs["subject"], tbs["issuer"] = hostile, hostile
    cert = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": plain["signature_algorithm"],
            "signature_value": key.sign(tbs.dump(force=True), ec.ECDSA(hashes.SHA256())),
        }
    )
    cert = asn1_x509.Certificate.load(cert.dump(force=True))
    signing_key = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer = SimpleSigner(
        signing_cert=cert,
        signing_key=signing_key,
        cert_registry=SimpleCertificateStore.from_certs([cert]),
    )
    signed = await signer.async_sign_general_data(content, "sha256", detached=True)
    return bytes(signed.dump())


async def test_a_sender_signature_by_a_name_with_a_nul_is_recorded_visibly(
    server: RunningServer,
) -> None:
    """The signature is intact (not trusted): the delivery is accepted and the report
    kept with the part, the NUL in the signer's name as a visible escape. PostgreSQL
    refused it in the part's jsonb: a 500 after the whole upload and both seals."""
    note = b"Izjava / statement"
    p7s = await _signed_by_a_name_with_a_nul(note)
    form = aiohttp.FormData()
    meta = {"to": [DEJAN], "subject": "s", "kind": "registered"}
    form.add_field("metadata", json.dumps(meta), content_type="application/json")
    form.add_field("file", note, filename="izjava.txt", content_type="text/plain")
    form.add_field(
        "signature", p7s, filename="izjava.p7s", content_type="application/pkcs7-signature"
    )
    async with server.client("qualified-qscd") as client:
        async with client.post(DELIVERIES, data=form) as response:
            assert response.status == 201, await response.text()
            did = (await response.json())["delivery_id"]
    status, body, _ = await request(server, "GET", f"/api/v1/deliveries/{did}", "delegate")
    assert status == 200
    signature = body["parts"][0]["sender_signature"]
    assert signature["intact"] is True
    [signer] = signature["signers"]
    assert signer["trusted"] is False
    assert "PNOSI-\\x001" in signer["subject"] and "\x00" not in signer["subject"]


async def test_a_request_aiohttp_cannot_parse_leaves_no_cookie_in_the_log(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """R9.5: aiohttp logs its parse error with the raw header line in the exception's
    message — a session cookie with it. The log keeps the exception's classes and frames,
    never its message."""
    url = URL(server.url)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(url.host, url.port, ssl=context)
    writer.write(
        b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\nCookie: vep_session=SECRETTOKEN123\x01\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read(200)
    writer.close()
    assert b" 400 " in answer.split(b"\r\n")[0]
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"exc": "Traceback' in line for line in lines)  # the error was logged
    assert not [line for line in lines if "SECRETTOKEN123" in line]
