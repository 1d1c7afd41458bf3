"""R1.1, R1.4, R3.1 and RFC 5280 §4.1.2.2: one serial number, one certificate.

Two kinds of "second certificate" under an issuer and serial on record, made here with the
development CA's key: a re-issue with other content (a new key) — what a CA that reuses a
serial presents, and the dev PKI re-issued against an old database — is refused
(``serial_reused``); the ECDSA twin of a certificate, its signature (r, s) written as
(r, n − s), is the same signed content in another DER, which anyone can make from a public
certificate, and is the same certificate.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import pkcs12

from server.devpki.generate import DevPki
from server.tools.sign import async_sign_pades
from tests.conftest import PkiService
from tests.mailbox_support import (
    PASSWORD,
    contract,
    legal,
    natural,
    open_mailbox,
    person_id,
    put_signed,
    start,
)
from tests.support import (
    RunningServer,
    assert_schema,
    make_settings,
    pem_header,
    proxy_header,
    running_server,
)

pytestmark = pytest.mark.integration

#: The order n of P-256, the curve of the development CA's key.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _fingerprint(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def reissued(pki: DevPki, identity: str, into: Path) -> Path:
    """The qualified CA's second certificate under ``identity``'s serial: the same names and
    extensions, another key — other content. Its key and chain go beside it as a PKCS#12
    (``<name>.p12``, password ``vep``)."""
    original = x509.load_pem_x509_certificate(pki.cert(identity).read_bytes())
    ca_key = serialization.load_pem_private_key(
        (pki.directory / "keys" / "qca.key.pem").read_bytes(), None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .serial_number(original.serial_number)
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
        .public_key(key.public_key())
    )
    for extension in original.extensions:
        if not isinstance(extension.value, x509.SubjectKeyIdentifier):
            builder = builder.add_extension(extension.value, extension.critical)
    other = builder.sign(ca_key, hashes.SHA256())
    assert other.serial_number == original.serial_number
    path = into / f"{identity}-reissued.pem"
    path.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    chain = x509.load_pem_x509_certificates(pki.cert("qualified-ca").read_bytes())
    path.with_suffix(".p12").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"reissued", key, other, chain, serialization.BestAvailableEncryption(b"vep")
        )
    )
    return path


def ecdsa_twin(pki: DevPki, identity: str, into: Path) -> Path:
    """``identity``'s certificate with its signature (r, s) written as (r, n − s): the
    same TBSCertificate, another DER and fingerprint, and still a valid signature."""
    original = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate(pki.cert(identity).read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    )
    r, s = decode_dss_signature(bytes(original["signature_value"]))
    twin = asn1_x509.Certificate(
        {
            "tbs_certificate": original["tbs_certificate"],
            "signature_algorithm": original["signature_algorithm"],
            "signature_value": encode_dss_signature(r, P256_ORDER - s),
        }
    )
    der = twin.dump(force=True)
    assert der != original.dump()
    path = into / f"{identity}-twin.pem"
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
async def behind_proxy(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    """A server behind nginx (``optional_no_ca``): the certificate comes in a header."""
    settings = make_settings(
        dev_pki, database_url, tls=False, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    async with running_server(settings, dev_pki) as server:
        yield server


async def test_r1_1_a_second_certificate_under_a_used_serial_is_refused(
    behind_proxy: RunningServer, tmp_path: Path
) -> None:
    """Revocation names a certificate by issuer and serial alone, so a trusted CA's second
    certificate under a serial already on record is refused (403 ``serial_reused``,
    audited, nothing recorded) — it was a 500 on every request. The certificate on record
    keeps working and the server stays healthy."""
    server = behind_proxy
    other = reissued(server.pki, "qualified-qscd", tmp_path)
    original_fp = _fingerprint(server.pki.cert("qualified-qscd"))
    async with server.client() as client:
        pool = server.services.pool
        original = proxy_header(server.pki, "qualified-qscd")
        async with client.get("/api/v1/session", headers=original) as response:
            assert response.status == 200
        for _ in range(2):  # the second answer comes from the cache of refusals
            async with client.get("/api/v1/mailboxes", headers=pem_header(other)) as response:
                assert response.status == 403
                assert response.content_type == "application/problem+json"
                body = await response.json()
                assert body["reason"] == "serial_reused"
                assert_schema("problem", body)
        certificates = await pool.fetch("SELECT fingerprint FROM certificates")
        refusals = await pool.fetch(
            """SELECT details FROM audit_events
                WHERE action = 'auth.certificate' AND outcome = 'refused'"""
        )
        async with client.get("/api/v1/session", headers=original) as response:
            assert response.status == 200
        async with client.get("/healthz") as response:
            assert response.status == 200
    assert [r["fingerprint"] for r in certificates] == [original_fp]
    assert len(refusals) == 1
    assert refusals[0]["details"]["reason"] == "serial_reused"
    assert refusals[0]["details"]["known_fingerprint"] == original_fp
    assert refusals[0]["details"]["fingerprint"] == _fingerprint(other)


async def test_r1_4_an_ecdsa_twin_is_the_same_certificate(
    behind_proxy: RunningServer, tmp_path: Path
) -> None:
    """The twin (r, n − s) is recorded beside the certificate, for the same person, and
    neither locks the other out, whichever came first."""
    server = behind_proxy
    twin = ecdsa_twin(server.pki, "qualified", tmp_path)
    async with server.client() as client:
        people = []
        for header in (pem_header(twin), proxy_header(server.pki, "qualified"), pem_header(twin)):
            async with client.get("/api/v1/session", headers=header) as response:
                assert response.status == 200, await response.text()
                people.append((await response.json())["person_id"])
        rows = await server.services.pool.fetch(
            "SELECT fingerprint, issuer, serial, person_id FROM certificates"
        )
    assert len(set(people)) == 1
    assert {r["fingerprint"] for r in rows} == {
        _fingerprint(twin),
        _fingerprint(server.pki.cert("qualified")),
    }
    assert len({(r["issuer"], r["serial"], r["person_id"]) for r in rows}) == 1


async def test_r3_1_a_delegate_certificate_cannot_lock_its_holder_out(
    dev_pki, pki_service: PkiService, database_url: str, tmp_path: Path
) -> None:
    """A custodian names a delegate by a certificate PEM, which proves no possession of
    its key. Naming the twin of a certificate nobody logged in with yet must not refuse its
    holder later (with UNIQUE (issuer, serial) the twin took the serial for good); naming a
    re-issue with other content under a serial on record is 422 ``serial_reused`` and
    adds nobody."""
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server:
        await open_mailbox(server, "qualified-qscd", legal("primer"))
        path = "/api/v1/mailboxes/primer@vep.si/delegates"

        async def add(pem: str) -> tuple[int, dict[str, object]]:
            body = {"certificate": pem, "permissions": ["read"], "admin_password": PASSWORD}
            async with server.client("qualified-qscd") as client, client.post(path, json=body) as r:
                return r.status, await r.json(content_type=None)

        status, _ = await add(ecdsa_twin(server.pki, "newcomer", tmp_path).read_text())
        assert status == 201
        async with server.client("newcomer") as client, client.get("/api/v1/session") as r:
            assert r.status == 200  # the holder, with the certificate the CA issued
            assert (await r.json())["person_id"] == person_id(server, "newcomer")

        async with server.client("reader") as client, client.get("/api/v1/session") as r:
            assert r.status == 200  # on record now, by its own login
        status, body = await add(reissued(server.pki, "reader", tmp_path).read_text())
        assert status == 422
        assert body["errors"] == [{"field": "certificate", "reason": "serial_reused"}]
        members = await server.services.pool.fetchval(
            "SELECT count(*) FROM memberships WHERE address = 'primer@vep.si'"
        )
    assert members == 2  # the custodian and the newcomer


async def test_r2_1_a_contract_signed_under_a_used_serial_is_refused(
    dev_pki, pki_service: PkiService, database_url: str, tmp_path: Path
) -> None:
    """The contract's signing certificate is recorded too: one with other content under a
    serial on record is 403 ``serial_reused`` (a 500 before), and no mailbox is opened."""
    settings = make_settings(dev_pki, database_url)
    other = reissued(dev_pki, "qualified", tmp_path).with_suffix(".p12").read_bytes()
    async with running_server(settings, dev_pki) as server, server.client("qualified") as client:
        status, started = await start(client, natural("bojan", tax_number="23456787"))
        assert status == 201, started
        signed = await async_sign_pades(await contract(client, started), other, b"vep")
        status, body = await put_signed(client, started, signed, "pades")
        assert (status, body["reason"]) == (403, "serial_reused")
        assert await server.services.pool.fetchval("SELECT count(*) FROM mailboxes") == 0
