"""R5, R6: registered and return-receipt deliveries with sealed, timestamped evidence that
independent tools verify; the vročilnica; deemed service at day 15; refusals leave nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from yarl import URL

from server.evidence import xml as evidence_xml
from server.settings import Settings
from server.tls import client_context
from server.tools.sign import async_sign_cades_detached
from tests.conftest import PkiService
from tests.mailbox_support import (
    legal,
    natural,
    open_mailbox,
    sample_contract_pdf,
)
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration
COURT = "primer@vep.si"  # flagged a public body by the operator
DEJAN = "dejan@vep.si"  # LoA high (QSCD)
BOJAN = "bojan@vep.si"  # LoA substantial
PDF = b"%PDF-1.4\n% sodba / judgment\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


def _form(meta: dict[str, Any], files: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("metadata", json.dumps(meta), content_type="application/json")
    for name, data, media_type in files:
        form.add_field("file", data, filename=name, content_type=media_type)
    return form


async def send(
    server: RunningServer,
    who: str,
    sender: str,
    to: list[str],
    kind: str = "registered",
    files: list[tuple[str, bytes, str]] | None = None,
) -> tuple[int, dict[str, Any]]:
    meta = {"to": to, "subject": "Vabilo na narok", "message": "Glej prilogo.", "kind": kind}
    form = _form(meta, files if files is not None else [("sodba.pdf", PDF, "application/pdf")])
    async with server.client(who) as client:
        async with client.post(f"/api/v1/mailboxes/{sender}/deliveries", data=form) as r:
            return r.status, await r.json(content_type=None)


async def get(server: RunningServer, who: str, path: str) -> tuple[int, bytes, Any]:
    async with server.client(who) as client, client.get(path) as r:
        return r.status, await r.read(), r.headers


async def _state(server: RunningServer) -> tuple[int, int, int]:
    pool = server.services.pool
    files = [p for p in (server.services.settings.data_dir / "content").rglob("*") if p.is_file()]
    return (
        await pool.fetchval("SELECT count(*) FROM deliveries"),
        await pool.fetchval("SELECT count(*) FROM evidence"),
        len(files),
    )


def xmlsec_verify(server: RunningServer, xml: bytes, tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "evidence.xml"
    path.write_bytes(xml)
    return subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--trusted-pem",
            str(server.pki.root),
            "--untrusted-pem",
            str(server.pki.cert("qualified-ca")),
            "--id-attr:Id",
            "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def openssl_ts_verify(
    server: RunningServer, xml: bytes, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """The SignatureTimeStamp is over the C14N of ds:SignatureValue (XAdES-T)."""
    root = etree.fromstring(xml)
    ns = {"ds": "http://www.w3.org/2000/09/xmldsig#", "xades": "http://uri.etsi.org/01903/v1.3.2#"}
    value = root.find(".//ds:SignatureValue", ns)
    token = root.find(".//xades:SignatureTimeStamp/xades:EncapsulatedTimeStamp", ns)
    assert value is not None and token is not None
    method = root.find(".//xades:SignatureTimeStamp/ds:CanonicalizationMethod", ns)
    exclusive = method is not None and "exc-c14n" in (method.get("Algorithm") or "")
    digest = hashlib.sha256(etree.tostring(value, method="c14n", exclusive=exclusive)).hexdigest()
    (tmp / "tok.der").write_bytes(base64.b64decode(token.text or ""))
    return subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            digest,
            "-token_in",
            "-in",
            str(tmp / "tok.der"),
            "-CAfile",
            str(server.pki.root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


async def test_r5_1_registered_delivery_with_verifiable_evidence(
    server: RunningServer, tmp_path: Path
) -> None:
    status, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert status == 201, sent
    events = [e["event"] for e in sent["evidence"]]
    assert events == ["SubmissionAcceptance", "ContentConsignment"]
    did = sent["delivery_id"]
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}")
    view = json.loads(body)
    assert status == 200 and view["message"] == "Glej prilogo."
    [part] = view["parts"]
    assert part["sha256"] == hashlib.sha256(PDF).hexdigest() and part["size"] == len(PDF)
    for _ in range(2):  # the first download issues ContentHandover, the second does not
        status, data, headers = await get(server, "delegate", part["href"])
        assert (status, data) == (200, PDF)
        assert headers["X-Content-SHA256"] == part["sha256"]
    status, body, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}/evidence")
    listed = json.loads(body)["evidence"]
    assert [e["event"] for e in listed].count("ContentHandover") == 1
    assert {e["qualified"] for e in listed} == {False}
    for item in listed:
        status, xml, headers = await get(server, "qualified-qscd", item["href"])
        assert status == 200 and headers["Content-Type"].startswith("application/xml")
        evidence_xml.validate(xml)  # our XSD
        assert hashlib.sha256(xml).hexdigest() == item["sha256"]
        result = xmlsec_verify(server, xml, tmp_path)
        assert result.returncode == 0, result.stderr
        ts = openssl_ts_verify(server, xml, tmp_path)
        assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stderr
        # the content is bound into every evidence by its digest (R6.2)
        assert base64.b64encode(hashlib.sha256(PDF).digest()) in xml


#: A part larger than this is a file, a part up to it is kept sealed in its row (R5.5).
INLINE_MAX = Settings.content_inline_max_bytes


@pytest.mark.parametrize(
    ("size", "where"), [(INLINE_MAX, "row"), (INLINE_MAX + 1, "file")], ids=["row", "file"]
)
async def test_r5_5_content_at_rest_is_encrypted(
    server: RunningServer, size: int, where: str
) -> None:
    marker = (b"ZAUPNO-" * (size // 7 + 1))[:size]
    status, sent = await send(
        server, "qualified-qscd", COURT, [DEJAN], files=[("note.txt", marker, "text/plain")]
    )
    assert status == 201
    row = await server.services.pool.fetchrow(
        "SELECT locator, inline_content FROM delivery_parts WHERE delivery_id = $1::uuid",
        sent["delivery_id"],
    )
    path = server.services.settings.data_dir / "content" / row["locator"][:2] / row["locator"]
    if where == "row":
        assert not path.exists()
        stored = bytes(row["inline_content"])
    else:
        assert row["inline_content"] is None
        stored = path.read_bytes()
    assert stored.startswith(b"VEPC") and len(stored) > size  # header and tag: sealed
    assert b"ZAUPNO" not in stored
    assert hashlib.sha256(marker).hexdigest() not in row["locator"]
    status, data, _ = await get(
        server, "delegate", f"/api/v1/deliveries/{sent['delivery_id']}/parts/0"
    )
    assert (status, data) == (200, marker)


async def test_r5_5_the_message_is_sealed_at_rest_too(server: RunningServer) -> None:
    """Found in review: the message text — content, hidden before acceptance and gone with
    the content — was kept in clear while every part was encrypted. It is sealed under the
    delivery's data key; the parties read it as sent, and a row written before (clear
    text) still reads as it is."""
    status, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    assert status == 201
    did = sent["delivery_id"]
    pool = server.services.pool
    stored = await pool.fetchval("SELECT message FROM deliveries WHERE delivery_id = $1::uuid", did)
    assert stored.startswith("vep-sealed:1:") and "prilogo" not in stored
    for who in ("delegate", "qualified-qscd"):
        status, body, _ = await get(server, who, f"/api/v1/deliveries/{did}")
        assert (status, json.loads(body)["message"]) == (200, "Glej prilogo."), who
    await pool.execute("UPDATE deliveries SET message = 'Stara, v razumljivi obliki.'")
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}")
    assert json.loads(body)["message"] == "Stara, v razumljivi obliki."
    # sealed under another delivery's key, it does not open here: 503, not the text
    _, other = await send(server, "qualified-qscd", COURT, [DEJAN])
    await pool.execute(
        """UPDATE deliveries SET message = (SELECT message FROM deliveries
                                             WHERE delivery_id = $2::uuid)
            WHERE delivery_id = $1::uuid""",
        did,
        other["delivery_id"],
    )
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}")
    assert (status, json.loads(body)["reason"]) == (503, "content_unavailable")


async def test_r5_2_only_public_bodies_send_return_receipts(server: RunningServer) -> None:
    before = await _state(server)
    status, body = await send(server, "delegate", DEJAN, [BOJAN], kind="return_receipt")
    assert (status, body["reason"]) == (403, "not_public_body")
    assert await _state(server) == before


@pytest.mark.parametrize(
    ("change", "reason", "status"),
    [
        ({"to": ["nobody@vep.si"]}, "invalid_fields", 422),
        ({"subject": ""}, "invalid_fields", 422),
        ({"kind": "express"}, "invalid_fields", 422),
    ],
)
async def test_r5_7_bad_metadata_leaves_nothing(
    server: RunningServer, change: dict[str, Any], reason: str, status: int
) -> None:
    before = await _state(server)
    meta = {"to": [DEJAN], "subject": "x", "message": "", "kind": "registered", **change}
    async with server.client("qualified-qscd") as client:
        async with client.post(
            f"/api/v1/mailboxes/{COURT}/deliveries",
            data=_form(meta, [("a.pdf", PDF, "application/pdf")]),
        ) as r:
            assert (r.status, (await r.json())["reason"]) == (status, reason)
    assert await _state(server) == before


UNKNOWN = [f"nikogar{i}@vep.si" for i in range(51)]


@pytest.mark.parametrize(
    ("to", "errors"),
    [
        ([], [{"field": "to", "reason": "required"}]),
        ("dejan@vep.si", [{"field": "to", "reason": "required"}]),
        ([DEJAN, 7], [{"field": "to", "reason": "required"}]),
        # R5.7 at its edge: 50 recipients are read (each unknown here), 51 are not
        (UNKNOWN[:50], [{"field": f"to[{i}]", "reason": "unknown_recipient"} for i in range(50)]),
        (UNKNOWN, [{"field": "to", "reason": "too_many"}]),
        # normalised and without repeats before they are judged
        (
            [" NIKOGAR0@vep.si", "nikogar0@vep.si"],
            [{"field": "to[0]", "reason": "unknown_recipient"}],
        ),
        ([COURT.upper()], [{"field": "to[0]", "reason": "own_mailbox"}]),
    ],
    ids=["empty", "not-a-list", "not-strings", "50", "51", "repeats", "own"],
)
async def test_r5_7_recipients_are_refused_naming_why(
    server: RunningServer, to: Any, errors: list[dict[str, str]]
) -> None:
    before = await _state(server)
    meta = {"to": to, "subject": "x", "message": "", "kind": "registered"}
    async with server.client("qualified-qscd") as client:
        async with client.post(
            f"/api/v1/mailboxes/{COURT}/deliveries",
            data=_form(meta, [("a.pdf", PDF, "application/pdf")]),
        ) as r:
            body = await r.json()
    assert (r.status, body["reason"], body["errors"]) == (422, "invalid_fields", errors)
    assert await _state(server) == before


async def test_r5_7_disallowed_type_oversize_and_disconnect_leave_nothing(
    server: RunningServer, dev_pki, database_url: str
) -> None:
    before = await _state(server)
    status, body = await send(
        server,
        "qualified-qscd",
        COURT,
        [DEJAN],
        files=[("a.exe", b"MZ...", "application/x-msdownload")],
    )
    assert (status, body["errors"][0]["reason"]) == (422, "type_not_allowed")
    assert await _state(server) == before
    # a second file that passes the size limit: the first one stored is removed too
    settings = make_settings(dev_pki, database_url, max_delivery_bytes=10_000)
    async with running_server(settings, dev_pki) as small:
        status, body = await send(
            small,
            "qualified-qscd",
            COURT,
            [DEJAN],
            files=[
                ("a.pdf", PDF[:6000], "application/pdf"),
                ("b.pdf", PDF[:6000], "application/pdf"),
            ],
        )
        assert (status, body["reason"]) == (413, "too_large")
        assert await _state(small) == before

        # a client that goes away mid-upload
        async def slow() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            yield json.dumps({"to": [DEJAN], "subject": "x", "kind": "registered"}).encode()
            yield b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="c.pdf"'
            yield b"\r\nContent-Type: application/pdf\r\n\r\n" + PDF[:3000]
            raise ConnectionResetError("client gone")

        async with small.client("qualified-qscd") as client:
            with pytest.raises((aiohttp.ClientError, ConnectionResetError)):
                await client.post(
                    f"/api/v1/mailboxes/{COURT}/deliveries",
                    data=slow(),
                    headers={"Content-Type": "multipart/form-data; boundary=b"},
                )
        for _ in range(50):
            if await _state(small) == before:
                break
            await asyncio.sleep(0.1)
        assert await _state(small) == before


async def test_r5_7_an_upload_slower_than_its_limit_is_408_and_leaves_nothing(
    server: RunningServer, dev_pki, database_url: str
) -> None:
    """R5.5: the parts must arrive within ``upload_timeout_seconds`` (under the content
    sweep's 24 h grace, so a trickled upload's first file cannot be swept as an orphan
    before its commit binds its hash in evidence). A file already written goes too."""
    before = await _state(server)
    # a file of several content chunks: aiohttp reads a part in 1 MiB chunks (or to its end)
    large = PDF * (3 * 1024 * 1024 // len(PDF))
    settings = make_settings(dev_pki, database_url, upload_timeout_seconds=1.0)

    meta = json.dumps({"to": [DEJAN], "subject": "x", "kind": "registered"}).encode()
    head = (
        b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        + meta
        + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"'
        + b"\r\nContent-Type: application/pdf\r\n\r\n"
        + large
        + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="b.pdf"'
        + b"\r\nContent-Type: application/pdf\r\n\r\n"
        + PDF[:100]
    )
    rest = PDF[100:] + b"\r\n--b--\r\n"

    async with running_server(settings, dev_pki) as slow:
        # by hand, so that the pause really falls between the bytes on the wire
        url = URL(slow.url)
        context = client_context(
            dev_pki.root,
            dev_pki.directory / "qualified-qscd.chain.pem",
            dev_pki.key("qualified-qscd"),
        )
        reader, writer = await asyncio.open_connection(url.host, url.port, ssl=context)
        writer.write(
            f"POST /api/v1/mailboxes/{COURT}/deliveries HTTP/1.1\r\nHost: {url.host}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {len(head) + len(rest)}\r\n\r\n".encode()
            + head
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
        writer.close()
        status_line, _, rest_of_answer = answer.partition(b"\r\n")
        assert b" 408 " in status_line
        assert b"upload_timeout" in rest_of_answer
        assert await _state(slow) == before


def forge_commitment(document: bytes) -> bytes:
    """The vročilnica with another commitment: a receipt for other content."""
    commitment = re.search(rb"<Commitment[^>]*>([0-9a-f]{64})<", document)
    assert commitment is not None
    forged = document.replace(commitment.group(1), b"0" * 64)
    assert forged != document
    return forged


async def _receipt(server: RunningServer, who: str, did: str) -> tuple[int, bytes, str]:
    async with server.client(who) as client:
        async with client.get(f"/api/v1/deliveries/{did}/receipt") as r:
            return r.status, await r.read(), r.headers.get("X-Receipt-Id", "")


async def _sign_receipt(
    server: RunningServer, who: str, signer: str, did: str, document: bytes, receipt_id: str
) -> tuple[int, dict[str, Any]]:
    signature = await async_sign_cades_detached(
        document, server.pki.p12(signer).read_bytes(), b"vep"
    )
    async with server.client(who) as client:
        async with client.post(
            f"/api/v1/deliveries/{did}/receipt?receipt_id={receipt_id}",
            data=signature,
            headers={"Content-Type": "application/pkcs7-signature"},
        ) as r:
            return r.status, await r.json(content_type=None)


async def test_r5_3_return_receipt_signed_vrocilnica_releases_content(
    server: RunningServer, tmp_path: Path
) -> None:
    status, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    assert status == 201
    assert [e["event"] for e in sent["evidence"]] == [
        "SubmissionAcceptance",
        "ContentConsignment",
        "NotificationForAcceptance",
    ]
    did = sent["delivery_id"]
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}")
    view = json.loads(body)
    assert view["subject"] == "Vabilo na narok"
    assert "message" not in view and "parts" not in view  # not before acceptance
    status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0")
    assert (status, json.loads(body)["reason"]) == (403, "not_accepted")
    status, document, receipt_id = await _receipt(server, "delegate", did)
    assert status == 200 and did.encode() in document
    status, body = await _sign_receipt(server, "delegate", "delegate", did, document, receipt_id)
    assert (status, body) == (200, {"accepted": 1})
    status, data, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0")
    assert (status, data) == (200, PDF)
    status, body, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}/evidence")
    accepted = [e for e in json.loads(body)["evidence"] if e["event"] == "ConsignmentAcceptance"]
    assert len(accepted) == 1
    _, xml, _ = await get(server, "qualified-qscd", accepted[0]["href"])
    assert b"recipient_signature" in xml and b"signature" in xml
    assert xmlsec_verify(server, xml, tmp_path).returncode == 0
    # the PDF vročilnica says who accepted and how (found in review: it named only the
    # mailbox, not the certificate that signed, nor that it was signed)
    from cryptography import x509

    from tests.integration.test_receipts import pdf_text

    _, pdf, _ = await get(server, "qualified-qscd", accepted[0]["href"] + ".pdf")
    text = pdf_text(pdf)
    delegate = x509.load_pem_x509_certificate(server.pki.cert("delegate").read_bytes())
    serial = f"{delegate.serial_number:x}"
    assert f"serial {serial}" in text
    assert "signed return receipt" in text and "Decided by" in text


async def test_r5_3_recipient_evidence_names_no_part_before_release(
    server: RunningServer, tmp_path: Path
) -> None:
    """A file's name can tell what it holds, and the recipient of a return receipt is shown
    the sender and subject only until acceptance (R5.3): their evidence of consignment and
    notification binds the part by digest, media type and size, and its PDF says the name
    is withheld. The sender's evidence names it, and so does the acceptance."""
    from tests.integration.test_receipts import pdf_text

    name = "sodba-locitev-zakonske-zveze.pdf"
    files = [(name, PDF, "application/pdf")]
    status, sent = await send(server, "qualified-qscd", COURT, [DEJAN], "return_receipt", files)
    assert status == 201
    did, digest = sent["delivery_id"], hashlib.sha256(PDF).digest()
    named = name.encode()

    async def documents(who: str) -> dict[str, tuple[bytes, str]]:
        """Each evidence the party may list: its XML and its PDF receipt's text."""
        _, body, _ = await get(server, who, f"/api/v1/deliveries/{did}/evidence")
        out = {}
        for e in json.loads(body)["evidence"]:
            pdf = (await get(server, who, e["href"] + ".pdf"))[1]
            out[e["event"]] = (await get(server, who, e["href"]))[1], pdf_text(pdf)
        return out

    before = await documents("delegate")
    assert sorted(before) == ["ContentConsignment", "NotificationForAcceptance"]
    for event, (xml, text) in before.items():
        assert named not in xml and name not in text, event
        assert base64.b64encode(digest) in xml and b"<MediaType>application/pdf<" in xml
        assert "name withheld: content not released" in text
        evidence_xml.validate(xml)  # Name is optional in our XSD
        assert xmlsec_verify(server, xml, tmp_path).returncode == 0
    sender = await documents("qualified-qscd")
    assert named in sender["SubmissionAcceptance"][0]  # the sender's own names it
    assert named not in sender["NotificationForAcceptance"][0]  # one document for both

    status, document, receipt_id = await _receipt(server, "delegate", did)
    assert named not in document  # the vročilnica commits to the name, salted
    status, _ = await _sign_receipt(server, "delegate", "delegate", did, document, receipt_id)
    assert status == 200
    xml, text = (await documents("delegate"))["ConsignmentAcceptance"]
    assert named in xml and name in text


async def test_r5_3_substantial_other_certificate_and_other_digests_are_refused(
    server: RunningServer,
) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [BOJAN], kind="return_receipt")
    status, body, _ = await _receipt(server, "qualified", sent["delivery_id"])
    assert (status, json.loads(body)["reason"]) == (403, "loa_high_required")

    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    status, document, rid = await _receipt(server, "delegate", did)
    # signed by another person's (qualified, QSCD) certificate
    status, body = await _sign_receipt(server, "delegate", "qualified-qscd", did, document, rid)
    assert (status, body["reason"]) == (403, "signer_mismatch")
    # a receipt with other content digests than the one issued
    forged = forge_commitment(document)
    assert forged != document
    status, body = await _sign_receipt(server, "delegate", "delegate", did, forged, rid)
    assert (status, body["reason"]) == (422, "wrong_document")
    row = await server.services.pool.fetchval(
        "SELECT state FROM delivery_recipients WHERE recipient_address = $1", DEJAN
    )
    assert row == "awaiting_acceptance"


async def test_r5_3_one_vrocilnica_collects_every_waiting_delivery(server: RunningServer) -> None:
    first = (await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt"))[1]
    second = (await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt"))[1]
    _, document, rid = await _receipt(server, "delegate", second["delivery_id"])
    assert first["delivery_id"].encode() in document
    status, body = await _sign_receipt(
        server, "delegate", "delegate", second["delivery_id"], document, rid
    )
    assert (status, body) == (200, {"accepted": 2})


async def test_r5_3_deemed_served_on_day_15_not_day_14(server: RunningServer) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    server.clock.advance(timedelta(days=14, hours=23, minutes=59))
    assert await server.services.acceptance.deemed_service() == 0
    server.clock.advance(timedelta(minutes=1))
    assert await server.services.acceptance.deemed_service() == 1
    assert await server.services.acceptance.deemed_service() == 0  # idempotent
    status, data, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0")
    assert (status, data) == (200, PDF)
    events = await server.services.pool.fetch(
        "SELECT event, xml FROM evidence WHERE delivery_id = $1::uuid ORDER BY event_time", did
    )
    assert "AcceptanceRejectionExpiry" in [e["event"] for e in events]
    # served, so released: from here on the evidence names the parts (R5.3)
    expiry = next(bytes(e["xml"]) for e in events if e["event"] == "AcceptanceRejectionExpiry")
    assert b"<Name>sodba.pdf</Name>" in expiry


async def test_r6_3_non_parties_get_404(server: RunningServer) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    did = sent["delivery_id"]
    for path in (
        f"/api/v1/deliveries/{did}",
        f"/api/v1/deliveries/{did}/evidence",
        f"/api/v1/deliveries/{did}/parts/0",
    ):
        status, _, _ = await get(server, "qualified", path)  # Bojan is no party
        assert status == 404, path


async def test_r5_inbox_and_outbox_keyset_pagination(server: RunningServer) -> None:
    for _ in range(3):
        assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
        server.clock.advance(timedelta(seconds=1))
    status, body, _ = await get(server, "delegate", f"/api/v1/mailboxes/{DEJAN}/inbox")
    inbox = json.loads(body)
    assert status == 200 and len(inbox["deliveries"]) == 3 and inbox["next"] is None
    times = [d["at"] for d in inbox["deliveries"]]
    assert times == sorted(times, reverse=True)
    status, body, _ = await get(server, "qualified-qscd", f"/api/v1/mailboxes/{COURT}/outbox")
    assert len(json.loads(body)["deliveries"]) == 3
    status, body, _ = await get(server, "delegate", f"/api/v1/mailboxes/{DEJAN}/inbox?after=zz")
    assert (status, json.loads(body)["reason"]) == (400, "bad_cursor")


async def test_r6_3_evidence_of_one_instant_is_listed_in_the_order_of_its_life(
    server: RunningServer,
) -> None:
    """A submission's evidence shares one time; it was listed in the order of random
    identifiers (a consignment before the acceptance it follows); now the submission's
    first, then each recipient's by address. Three deliveries, so that
    an order left to chance passes one run in ~1.7 million (each listing 1 in 120)."""
    from server.evidence.model import EventName
    from server.store.deliveries import EVENT_ORDER

    assert set(EVENT_ORDER) == {name.value for name in EventName}
    for _ in range(3):
        status, sent = await send(server, "qualified-qscd", COURT, [DEJAN, BOJAN], "return_receipt")
        assert status == 201, sent
        _, body, _ = await get(
            server, "qualified-qscd", f"/api/v1/deliveries/{sent['delivery_id']}/evidence"
        )
        listed = [(e["event"], e.get("recipient")) for e in json.loads(body)["evidence"]]
        assert listed == [
            ("SubmissionAcceptance", None),
            ("ContentConsignment", BOJAN),
            ("NotificationForAcceptance", BOJAN),
            ("ContentConsignment", DEJAN),
            ("NotificationForAcceptance", DEJAN),
        ]


def _xades_enveloped(server: RunningServer, identity: str, document: bytes) -> bytes:
    """The vročilnica signed as XAdES enveloped with ``identity``'s key (signxml)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from signxml import SignatureMethod
    from signxml.xades import XAdESSigner

    chain = (server.pki.directory / f"{identity}.chain.pem").read_bytes()
    certs = [c.public_bytes(Encoding.PEM).decode() for c in x509.load_pem_x509_certificates(chain)]
    signer = XAdESSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256)
    signed = signer.sign(
        etree.fromstring(document), key=server.pki.key(identity).read_bytes(), cert=certs
    )
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


async def test_r5_3_vrocilnica_signed_as_xades_enveloped(server: RunningServer) -> None:
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = sent["delivery_id"]
    _, document, rid = await _receipt(server, "delegate", did)

    async def post(signed: bytes) -> tuple[int, dict[str, Any]]:
        async with server.client("delegate") as client:
            async with client.post(
                f"/api/v1/deliveries/{did}/receipt?receipt_id={rid}",
                data=signed,
                headers={"Content-Type": "application/xml"},
            ) as r:
                return r.status, await r.json(content_type=None)

    forged = forge_commitment(document)
    status, body = await post(_xades_enveloped(server, "delegate", forged))
    assert (status, body["reason"]) == (422, "wrong_document")
    status, body = await post(_xades_enveloped(server, "qualified-qscd", document))
    assert (status, body["reason"]) == (403, "signer_mismatch")
    tampered = forge_commitment(_xades_enveloped(server, "delegate", document))
    status, body = await post(tampered)
    assert (status, body["reason"]) == (422, "signature_invalid")
    status, body = await post(_xades_enveloped(server, "delegate", document))
    assert (status, body) == (200, {"accepted": 1})


async def test_r6_4_our_evidence_passes_the_validation_tool(server: RunningServer) -> None:
    """POST /api/v1/validate on a downloaded evidence: intact, trusted, timestamp matched."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    _, xml, _ = await get(server, "qualified-qscd", sent["evidence"][0]["href"])
    async with server.client("qualified") as client:  # any logged-in person may validate
        async with client.post(
            "/api/v1/validate", data=xml, headers={"Content-Type": "application/xml"}
        ) as r:
            assert r.status == 200
            report = await r.json()
        async with client.post(
            "/api/v1/validate",
            data=xml.replace(b"SubmissionAcceptance", b"ContentHandover"),
            headers={"Content-Type": "application/xml"},
        ) as r:
            tampered = await r.json()
    assert report["intact"] is True
    [signature] = report["signatures"]
    assert signature["trusted"] is True
    assert [t["imprint_matches"] for t in signature["timestamps"]] == [True]
    assert tampered["intact"] is False


async def test_r6_3_pdf_receipt_is_pades_sealed_and_for_parties_only(
    server: RunningServer,
) -> None:
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    from server.trust.validation import load_certificates

    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    href = sent["evidence"][1]["href"] + ".pdf"  # ContentConsignment
    for who in ("qualified-qscd", "delegate"):  # sender and recipient
        status, pdf, headers = await get(server, who, href)
        assert status == 200 and headers["Content-Type"] == "application/pdf"
    status, _, _ = await get(server, "qualified", href)  # no party
    assert status == 404
    [signature] = PdfFileReader(BytesIO(pdf)).embedded_signatures
    async with AIOHttpFetcherBackend() as fetchers:
        context = ValidationContext(
            trust_roots=load_certificates([server.pki.root]),
            other_certs=load_certificates([server.pki.cert("qualified-ca")]),
            allow_fetching=True,
            fetchers=fetchers,
        )
        status_report = await async_validate_pdf_signature(signature, context)
    assert status_report.intact and status_report.valid and status_report.trusted
    assert status_report.timestamp_validity is not None
    assert status_report.timestamp_validity.intact


async def test_r5_1_sender_signatures_are_verified_and_recorded(
    server: RunningServer,
) -> None:
    from server.tools.sign import async_sign_pades
    from tests.conftest import DATA

    p12 = server.pki.p12("qualified-qscd").read_bytes()
    # a PDF the sender signed (PAdES) is verified and the result kept with the part
    signed_pdf = await async_sign_pades(sample_contract_pdf(), p12, b"vep")
    status, sent = await send(
        server,
        "qualified-qscd",
        COURT,
        [DEJAN],
        files=[("podpisano.pdf", signed_pdf, "application/pdf")],
    )
    assert status == 201, sent
    _, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{sent['delivery_id']}")
    [part] = json.loads(body)["parts"]
    signature = part["sender_signature"]
    assert signature["intact"] is True and signature["format"] == "pades"
    assert signature["signers"][0]["qualified"] is True
    assert signature["signers"][0]["trusted"] is True
    # a detached CAdES part after its file
    note = b"Izjava / statement"
    p7s = await async_sign_cades_detached(note, p12, b"vep")
    form = aiohttp.FormData()
    form.add_field(
        "metadata",
        json.dumps({"to": [DEJAN], "subject": "s", "kind": "registered"}),
        content_type="application/json",
    )
    form.add_field("file", note, filename="izjava.txt", content_type="text/plain")
    form.add_field(
        "signature", p7s, filename="izjava.txt.p7s", content_type="application/pkcs7-signature"
    )
    async with server.client("qualified-qscd") as client:
        async with client.post(f"/api/v1/mailboxes/{COURT}/deliveries", data=form) as r:
            assert r.status == 201, await r.text()
    # refusals leave nothing: a corrupted signed PDF, a CAdES over other bytes
    before = await _state(server)
    corrupted = (DATA / "pades" / "pdf-signed-corrupted.pdf").read_bytes()
    status, body = await send(
        server, "qualified-qscd", COURT, [DEJAN], files=[("x.pdf", corrupted, "application/pdf")]
    )
    assert (status, body["errors"]) == (
        422,
        [{"field": "file[0]", "reason": "sender_signature_invalid"}],
    )
    form = aiohttp.FormData()
    form.add_field(
        "metadata",
        json.dumps({"to": [DEJAN], "subject": "s", "kind": "registered"}),
        content_type="application/json",
    )
    form.add_field("file", note + b"!", filename="izjava.txt", content_type="text/plain")
    form.add_field(
        "signature", p7s, filename="izjava.txt.p7s", content_type="application/pkcs7-signature"
    )
    async with server.client("qualified-qscd") as client:
        async with client.post(f"/api/v1/mailboxes/{COURT}/deliveries", data=form) as r:
            assert r.status == 422
            assert (await r.json())["errors"][0]["reason"] == "sender_signature_invalid"
    assert await _state(server) == before


@pytest.fixture
async def own_data_server(dev_pki, pki_service: PkiService, database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server whose content directory is its own (the shared test data dir holds other
    tests' files, which this database does not know and a sweep would rightly remove)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "pki").symlink_to(dev_pki.directory)
    # every part a file: what the sweep is about (parts kept in rows go with their row)
    settings = make_settings(dev_pki, database_url, data_dir=data, content_inline_max_bytes=0)
    async with running_server(settings, dev_pki) as running:
        await open_mailbox(running, "qualified-qscd", legal("primer"))
        await open_mailbox(running, "delegate", natural("dejan", tax_number="12345679"))
        await running.services.operator.set_public_body(COURT, True, "maja")
        yield running


async def test_r5_5_sweep_removes_orphans_past_the_grace_period_only(
    own_data_server: RunningServer,
) -> None:
    """A node that died between writing a part and committing its row leaves an orphan."""
    import os
    from datetime import UTC, datetime

    server = own_data_server
    assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
    content = server.services.submission._content
    key, _ = content.new_data_key("orphan")

    async def chunks() -> AsyncIterator[bytes]:
        yield b"left behind by a crash"

    orphan = await content.write("orphan", key, chunks(), 1000)
    young = await content.write("orphan", key, chunks(), 1000)
    path = content.path_of(orphan.locator)  # type: ignore[attr-defined]
    two_days_ago = datetime.now(UTC).timestamp() - 2 * 86400
    os.utime(path, (two_days_ago, two_days_ago))
    for p in (server.services.settings.data_dir / "content").rglob("*"):
        if p.is_file() and p.name != young.locator:  # the committed part is old too
            os.utime(p, (two_days_ago, two_days_ago))
    report = await server.services.content_sweep.run(datetime.now(UTC))
    assert report.removed == (orphan.locator,)
    assert not path.exists()
    assert content.path_of(young.locator).exists()  # type: ignore[attr-defined]
    delivery = await server.services.pool.fetchval("SELECT delivery_id FROM deliveries")
    status, data, _ = await get(server, "delegate", f"/api/v1/deliveries/{delivery}/parts/0")
    assert (status, data) == (200, PDF)


async def test_r5_3_login_mode_acceptance_and_rejection(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """receipt_signature = "login": the QSCD session's explicit acceptance (the VEP.SI terms'
    literal rule), recorded as such; a refusal records ConsignmentRejection."""
    settings = make_settings(dev_pki, database_url, receipt_signature="login")
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        await open_mailbox(server, "delegate", natural("dejan", tax_number="12345679"))
        await server.services.operator.set_public_body(COURT, True, "maja")
        first = (await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt"))[1]
        async with server.client("delegate") as dejan:
            async with dejan.post(f"/api/v1/deliveries/{first['delivery_id']}/accept") as r:
                assert (r.status, await r.json()) == (200, {"accepted": 1})
        second = (await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt"))[1]
        async with server.client("delegate") as dejan:
            async with dejan.post(f"/api/v1/deliveries/{second['delivery_id']}/reject") as r:
                assert (r.status, await r.json()) == (200, {"rejected": 1})
            async with dejan.get(f"/api/v1/deliveries/{second['delivery_id']}/parts/0") as r:
                assert r.status == 403  # refused: the content stays closed
        rows = await server.services.pool.fetch(
            """SELECT e.event, r.acceptance_method FROM evidence e
                 JOIN delivery_recipients r USING (delivery_id)
                WHERE e.event IN ('ConsignmentAcceptance', 'ConsignmentRejection')
                ORDER BY e.event"""
        )
        xml = await server.services.pool.fetchval(
            "SELECT xml FROM evidence WHERE event = 'ConsignmentAcceptance'"
        )
        refusal = await server.services.pool.fetchval(
            "SELECT xml FROM evidence WHERE event = 'ConsignmentRejection'"
        )
    assert [(r["event"], r["acceptance_method"]) for r in rows] == [
        ("ConsignmentAcceptance", "login"),
        ("ConsignmentRejection", "rejection"),
    ]
    assert b"login" in bytes(xml)  # the evidence records how it was accepted
    # what was refused is never released: its evidence names no part either (R5.3)
    assert b"<Name>sodba.pdf</Name>" in bytes(xml)
    assert b"sodba.pdf" not in bytes(refusal) and b"<ContentPart><MediaType>" in bytes(refusal)


async def test_r5_4_recipient_is_notified_by_email_without_content(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    from tests.smtp import SmtpServer

    smtp = SmtpServer()
    smtp.start()
    try:
        settings = make_settings(
            dev_pki, database_url, smtp_port=smtp.port, outbox_poll_seconds=0.05
        )
        async with running_server(settings, dev_pki) as server:
            await open_mailbox(server, "qualified-qscd", legal("primer"))
            await open_mailbox(server, "delegate", natural("dejan", tax_number="12345679"))
            base = f"/api/v1/mailboxes/{DEJAN}/notification-addresses"
            async with server.client("delegate") as dejan:
                async with dejan.post(base, json={"email": "dejan@example.si"}) as r:
                    assert r.status == 202
                assert await asyncio.to_thread(smtp.wait_received, 1, 10)
                code = (
                    __import__("re")
                    .search(r"\b(\d{6})\b", smtp.received[0].message.get_content())
                    .group(1)
                )
                async with dejan.post(f"{base}/dejan@example.si/confirm", json={"code": code}) as r:
                    assert r.status == 204
            assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
            assert await asyncio.to_thread(smtp.wait_received, 2, 10)
        mail = smtp.received[1]
        text = mail.message.get_content()
        assert mail.rcpt_tos == ("dejan@example.si",)
        assert DEJAN in text
        assert "Vabilo na narok" not in text and "Glej prilogo" not in text  # no content
    finally:
        smtp.stop()


async def test_r5_3_one_senders_acceptance_evidence_reveals_nothing_of_another(
    server: RunningServer,
) -> None:
    """Found in review: the vročilnica listed every waiting delivery in plain text, and the
    signed vročilnica goes into each sender's evidence. It now lists salted commitments;
    each sender gets only its own salt and can check its own line."""
    from server.services.acceptance import delivery_commitment

    await server.services.operator.set_public_body(BOJAN, True, "maja")
    secret_files = [("ovadba-zoper-dejana.pdf", PDF, "application/pdf")]
    async with server.client("qualified") as bojan:
        meta = {"to": [DEJAN], "subject": "ZAUPNO kazenska ovadba", "kind": "return_receipt"}
        async with bojan.post(
            f"/api/v1/mailboxes/{BOJAN}/deliveries", data=_form(meta, secret_files)
        ) as r:
            assert r.status == 201
    _, court = await send(server, "qualified-qscd", COURT, [DEJAN], kind="return_receipt")
    did = court["delivery_id"]
    _, document, rid = await _receipt(server, "delegate", did)
    assert b"ZAUPNO" not in document and b"ovadba" not in document
    signed = _xades_enveloped(server, "delegate", document)
    async with server.client("delegate") as dejan:
        async with dejan.post(
            f"/api/v1/deliveries/{did}/receipt?receipt_id={rid}",
            data=signed,
            headers={"Content-Type": "application/xml"},
        ) as r:
            assert (r.status, await r.json()) == (200, {"accepted": 2})
        async with dejan.post(
            f"/api/v1/deliveries/{did}/receipt?receipt_id={rid}",
            data=signed,
            headers={"Content-Type": "application/xml"},
        ) as r:
            assert r.status == 409  # the delivery no longer waits; the receipt is used
    _, body, _ = await get(server, "qualified-qscd", f"/api/v1/deliveries/{did}/evidence")
    [accepted] = [e for e in json.loads(body)["evidence"] if e["event"] == "ConsignmentAcceptance"]
    _, xml, _ = await get(server, "qualified-qscd", accepted["href"])
    blob = xml + base64.b64decode(re.search(rb'name="recipient_signature">([^<]+)<', xml).group(1))
    assert b"ZAUPNO" not in blob and b"ovadba" not in blob and BOJAN.encode() not in blob
    # the court can check its own line of the signed vročilnica with its salt
    salt = re.search(rb'name="commitment_salt">([0-9a-f]+)<', xml).group(1).decode()
    delivery = await server.services.submission._deliveries.get(uuid.UUID(did))
    assert delivery_commitment(delivery, salt).encode() in document


async def test_r6_1_recipients_do_not_see_the_senders_submission_evidence(
    server: RunningServer,
) -> None:
    """SubmissionAcceptance names every recipient: it is the sender's (found in review)."""
    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN, BOJAN])
    _, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{sent['delivery_id']}/evidence")
    events = json.loads(body)["evidence"]
    assert [e["event"] for e in events] == ["ContentConsignment"]
    for e in events:
        _, xml, _ = await get(server, "delegate", e["href"])
        assert BOJAN.encode() not in xml


async def test_r6_1_head_does_not_hand_over_and_text_bytrange_is_no_signature(
    server: RunningServer,
) -> None:
    """Found in review: HEAD recorded ContentHandover; a PDF merely containing the text
    "/ByteRange" was refused as a bad signature."""
    pdf = PDF.replace(b"sodba / judgment", b"/ByteRange in the text")
    status, sent = await send(
        server, "qualified-qscd", COURT, [DEJAN], files=[("t.pdf", pdf, "application/pdf")]
    )
    assert status == 201, sent
    href = f"/api/v1/deliveries/{sent['delivery_id']}/parts/0"
    async with server.client("delegate") as dejan, dejan.head(href) as r:
        assert r.status == 405
    events = await server.services.pool.fetch("SELECT event FROM evidence")
    assert "ContentHandover" not in [e["event"] for e in events]


async def test_r6_2_later_evidence_names_the_senders_certificate_and_subject(
    server: RunningServer,
) -> None:
    """Found in review: handover and decision evidence left out the sender's certificate
    reference and the subject digest that the submission evidence binds."""
    from server.trust.certs import parse

    _, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
    status, _, _ = await get(
        server, "delegate", f"/api/v1/deliveries/{sent['delivery_id']}/parts/0"
    )
    assert status == 200
    xml = await server.services.pool.fetchval(
        "SELECT xml FROM evidence WHERE event = 'ContentHandover'"
    )
    facts = parse(server.pki.cert("qualified-qscd").read_bytes())[1]
    assert base64.b64encode(bytes.fromhex(facts.fingerprint)) in bytes(xml)
    subject_digest = hashlib.sha256(b"Vabilo na narok").digest()
    assert base64.b64encode(subject_digest) in bytes(xml)


async def test_r5_6_recipient_suspended_during_the_upload_is_refused(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert itself re-checks that each recipient's mailbox is still active: a mailbox
    suspended after the metadata was checked refuses the delivery (409), leaving nothing."""
    before = await _state(server)
    pool = server.services.pool
    content = server.services.submission._content
    write = content.write

    async def suspend_then_write(*args: Any, **kwargs: Any) -> Any:
        await pool.execute("UPDATE mailboxes SET state = 'suspended' WHERE address = $1", DEJAN)
        return await write(*args, **kwargs)

    monkeypatch.setattr(content, "write", suspend_then_write)
    try:
        status, body = await send(server, "qualified-qscd", COURT, [DEJAN])
        assert (status, body["reason"]) == (409, "recipient_not_active"), body
        assert await _state(server) == before
    finally:
        await pool.execute("UPDATE mailboxes SET state = 'active' WHERE address = $1", DEJAN)


async def test_r5_1_part_names_from_content_disposition(server: RunningServer) -> None:
    """The field and file names come from one parse of each part's Content-Disposition:
    ``filename*`` (RFC 5987, UTF-8) wins over ``filename``, quoted escapes are undone, and a
    part whose ``name`` is not ``file``/``signature`` is refused by that name."""
    meta = json.dumps({"to": [DEJAN], "subject": "Imena", "kind": "registered"}).encode()

    def body(disposition: bytes) -> bytes:
        return (
            b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
            + meta
            + b"\r\n--b\r\nContent-Disposition: form-data; "
            + disposition
            + b"\r\nContent-Type: text/plain\r\n\r\nvsebina\r\n--b--\r\n"
        )

    async def post(disposition: bytes) -> tuple[int, dict[str, Any]]:
        async with server.client("qualified-qscd") as client:
            async with client.post(
                f"/api/v1/mailboxes/{COURT}/deliveries",
                data=body(disposition),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            ) as r:
                return r.status, await r.json(content_type=None)

    rfc5987 = b"filename*=UTF-8''odlo%C4%8Dba%20%C5%A1t.%207.txt"
    cases = {
        b'name="file"; filename="fallback.txt"; ' + rfc5987: "odločba št. 7.txt",
        b'name="file"; filename="a\\"b.txt"': 'a"b.txt',
        b"name=file; filename=plain.txt": "plain.txt",
    }
    for disposition, expected in cases.items():
        status, sent = await post(disposition)
        assert status == 201, sent
        _, view, _ = await get(server, "delegate", f"/api/v1/deliveries/{sent['delivery_id']}")
        assert [p["name"] for p in json.loads(view)["parts"]] == [expected]
    status, refused = await post(b'name="attachment"; filename="x.txt"')
    assert (status, refused["reason"]) == (400, "unknown_part")
