"""R6.4: ``vep verify`` (exit codes 0/1/2, human and JSON output) and ``POST /api/v1/validate``
on signatures made with the development PKI, whose root is the trust anchor.

``vep verify`` is not wired into ``server/__main__.py`` yet, so the command is driven
through ``server.validate.cli.run`` with the namespace argparse would build. The HTTP
handler is mounted on a minimal aiohttp application (the error middleware of the real
one, a stand-in for the settings), since the route table is wired elsewhere. Nothing
here needs the database or the OCSP service: validation is offline by design.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from asn1crypto import cms, pem, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml.algorithms import SignatureMethod
from signxml.xades.xades import XAdESSigner

from server.devpki.generate import DevPki
from server.http import middlewares
from server.http.api import validate as validate_api
from server.http.context import SERVICES
from server.tools.sign import async_sign_cades_detached, async_sign_pades
from server.validate import cli
from tests.conftest import DATA

pytestmark = pytest.mark.integration

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
CONTRACT = b"Pogodba o uporabi storitve VEP, razlicica 2026-11.\n"


@pytest.fixture(autouse=True)
def _only_given_anchors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command would also trust the anchors configured in this environment."""
    monkeypatch.setattr(cli, "environment_anchor_paths", lambda: ())


def _run(file: Path, **options: Any) -> int:
    args = argparse.Namespace(
        command="verify",
        file=str(file),
        content=options.get("content"),
        anchor=options.get("anchor", []),
        json=options.get("json", False),
    )
    return cli.run(args)


@pytest_asyncio.fixture(scope="module")
async def signed(dev_pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A contract and its detached CAdES, a signed PDF and an XAdES-T, made once."""
    directory = tmp_path_factory.mktemp("signed")
    p12 = dev_pki.p12("qualified-qscd").read_bytes()
    files = {
        "content": directory / "contract.txt",
        "p7s": directory / "contract.p7s",
        "pdf": directory / "signed.pdf",
        "xml": directory / "evidence.xml",
    }
    files["content"].write_bytes(CONTRACT)
    files["p7s"].write_bytes(await async_sign_cades_detached(CONTRACT, p12, b"vep"))
    original = (DATA / "pades" / "pdf-signed-original.pdf").read_bytes()
    files["pdf"].write_bytes(await async_sign_pades(original, p12, b"vep"))
    files["xml"].write_bytes(await _xades_t(dev_pki))
    return files


async def _xades_t(pki: DevPki) -> bytes:
    """An enveloped XAdES-B-T as the evidence sealer makes it (shared NOTES recipe):
    signxml signs, then a SignatureTimeStamp over the exclusive C14N of SignatureValue."""
    document = etree.fromstring(b"<Evidence><Event>delivered</Event></Evidence>")
    chain = (pki.directory / "qualified-qscd.chain.pem").read_bytes()
    certs = [pem.armor("CERTIFICATE", der).decode() for _, _, der in pem.unarmor(chain, True)]
    signer = XAdESSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256)
    signed = signer.sign(document, key=pki.key("qualified-qscd").read_bytes(), cert=certs)
    value = signed.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue")
    assert value is not None
    imprint = hashlib.sha256(etree.tostring(value, method="c14n", exclusive=True)).digest()
    token = _token(pki, imprint)
    qualifying = signed.find(f"{{{DS}}}Signature/{{{DS}}}Object/{{{XADES}}}QualifyingProperties")
    assert qualifying is not None
    unsigned = etree.SubElement(qualifying, f"{{{XADES}}}UnsignedProperties")
    properties = etree.SubElement(unsigned, f"{{{XADES}}}UnsignedSignatureProperties")
    stamp = etree.SubElement(properties, f"{{{XADES}}}SignatureTimeStamp")
    etree.SubElement(
        stamp,
        f"{{{DS}}}CanonicalizationMethod",
        Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    encapsulated = etree.SubElement(stamp, f"{{{XADES}}}EncapsulatedTimeStamp")
    encapsulated.text = base64.b64encode(token.dump()).decode("ascii")
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def _token(pki: DevPki, imprint: bytes) -> cms.ContentInfo:
    """An RFC 3161 token from the dev PKI's (EC) TSA key, made in-process."""
    cert = x509.Certificate.load(pem.unarmor(pki.cert("tsa").read_bytes())[2])
    key = serialization.load_pem_private_key(
        (pki.directory / "keys" / "tsa.key.pem").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    info = tsp.TSTInfo(
        {
            "version": 1,
            "policy": "1.3.6.1.4.1.57264.9.1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": imprint,
            },
            "serial_number": 1,
            "gen_time": datetime.now(UTC),
        }
    ).dump()
    attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(info).digest()]}),
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(cert.dump()).digest()}]}],
                }
            ),
        ]
    )
    signer_info = {
        "version": "v1",
        "sid": {
            "issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}
        },
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": "sha256_ecdsa"},
        "signature": key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256())),
    }
    signed_data = {
        "version": "v3",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {
            "content_type": "tst_info",
            "content": cms.ParsableOctetString(info),
        },
        "certificates": [cert],
        "signer_infos": [signer_info],
    }
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})


# --- vep verify ------------------------------------------------------------------------


def test_r6_4_cli_intact_json(
    signed: dict[str, Path], dev_pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        signed["p7s"], content=str(signed["content"]), anchor=[str(dev_pki.root)], json=True
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["input_kind"] == "cades" and report["intact"] is True
    (signature,) = report["signatures"]
    assert signature["trusted"] is True
    assert signature["trust"]["anchor"] == "CN=VEP Dev Root CA,O=VEP Development PKI,C=SI"
    assert signature["qualified"] is True and signature["qscd"] is True
    assert signature["qc_types"] == ["qct_esign"]


def test_r6_4_cli_trust_is_not_part_of_the_exit_code(
    signed: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(signed["p7s"], content=str(signed["content"]), json=True) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert signature["trusted"] is False
    assert signature["trust"]["reason"].startswith("untrusted: no path to an anchor")


def test_r6_4_cli_other_content_is_not_intact(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.txt"
    other.write_bytes(CONTRACT.replace(b"2026", b"2027"))
    assert _run(signed["p7s"], content=str(other)) == 1
    out = capsys.readouterr().out
    assert "NOT INTACT" in out and "digest_mismatch" in out


def test_r6_4_cli_pades_and_xades_t(
    signed: dict[str, Path], dev_pki: DevPki, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(signed["pdf"], anchor=[str(dev_pki.root)], json=True) == 0
    pdf = json.loads(capsys.readouterr().out)
    # the DSS test signature, then ours, appended as an incremental update
    assert [s["trusted"] for s in pdf["signatures"]] == [False, True]
    assert _run(signed["xml"], anchor=[str(dev_pki.root)], json=True) == 0
    (xades,) = json.loads(capsys.readouterr().out)["signatures"]
    (stamp,) = xades["timestamps"]
    assert stamp["kind"] == "signature" and stamp["imprint_matches"] is True
    assert stamp["trusted"] is True
    assert xades["trust"]["validated_at_source"] == "signature timestamp"


def test_r6_4_cli_tampered_xades(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed["xml"].read_bytes().replace(b"delivered", b"refused!!"))
    assert _run(tampered, json=True) == 1
    report = json.loads(capsys.readouterr().out)
    codes = {e["code"] for s in report["signatures"] for e in s["errors"]}
    assert codes == {"digest_mismatch"}


def test_r6_4_cli_hostile_and_unknown_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(DATA / "xades" / "xades-with-dtd-injection.xml") == 1
    assert "hostile_xml" in capsys.readouterr().out
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01 not a signature")
    assert _run(garbage, json=True) == 1
    assert json.loads(capsys.readouterr().out)["input_kind"] == "unknown"


def test_r6_4_cli_usage_errors(
    signed: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path / "missing.p7s") == 2
    assert _run(signed["p7s"], content=str(tmp_path / "missing.txt")) == 2
    assert _run(signed["p7s"], anchor=[str(tmp_path / "missing.pem")]) == 2
    not_a_cert = tmp_path / "bad.pem"
    not_a_cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert _run(signed["p7s"], anchor=[str(not_a_cert)]) == 2
    assert "vep verify:" in capsys.readouterr().err


def test_r6_4_cli_timestamp_with_content(tmp_path: Path) -> None:
    content = tmp_path / "content.txt"
    content.write_bytes(b"Test123")
    assert _run(DATA / "timestamps" / "d-trust.tsr", content=str(content)) == 0
    content.write_bytes(b"Test124")
    assert _run(DATA / "timestamps" / "d-trust.tsr", content=str(content)) == 1


# --- POST /api/v1/validate -------------------------------------------------------------


@pytest_asyncio.fixture
async def client(dev_pki: DevPki) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[middlewares.request_context, middlewares.errors])
    settings = SimpleNamespace(anchor_paths=(dev_pki.root,))
    app[SERVICES] = SimpleNamespace(settings=settings)  # type: ignore[misc]
    app.router.add_post("/api/v1/validate", validate_api.validate)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_r6_4_http_raw_and_multipart(
    client: TestClient[web.Request, web.Application], signed: dict[str, Path]
) -> None:
    raw = await client.post("/api/v1/validate", data=signed["pdf"].read_bytes())
    assert raw.status == 200
    report = await raw.json()
    assert report["input_kind"] == "pades" and report["intact"] is True
    form = FormData()
    form.add_field("file", signed["p7s"].read_bytes(), filename="contract.p7s")
    form.add_field("content", CONTRACT, filename="contract.txt")
    multipart = await client.post("/api/v1/validate", data=form)
    assert multipart.status == 200
    body = await multipart.json()
    assert body["intact"] is True and body["signatures"][0]["trusted"] is True


async def test_r6_4_http_not_intact_is_still_200(
    client: TestClient[web.Request, web.Application],
) -> None:
    data = (DATA / "pades" / "pdf-signed-added-page.pdf").read_bytes()
    response = await client.post("/api/v1/validate", data=data)
    assert response.status == 200
    assert (await response.json())["intact"] is False


async def test_r6_4_http_refusals(client: TestClient[web.Request, web.Application]) -> None:
    unknown = await client.post("/api/v1/validate", data=b"plain text")
    assert unknown.status == 422
    assert (await unknown.json())["reason"] == "unsupported_format"
    empty = await client.post("/api/v1/validate", data=b"")
    assert empty.status == 400
    form = FormData()
    form.add_field("content", b"x", filename="x")
    no_file = await client.post("/api/v1/validate", data=form)
    assert no_file.status == 400 and (await no_file.json())["reason"] == "missing_file"
    too_big = BytesIO(b"0" * (validate_api.MAX_PART_BYTES + 1))
    huge = await client.post("/api/v1/validate", data=too_big)
    assert huge.status == 413
