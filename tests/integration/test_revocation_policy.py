"""R1.1 revocation policy and outside anchors: OCSP/CRL service down under ``require`` and
``soft-fail``; a qualified CA added with VEP_TRUST_ANCHORS; a real certificate from the
public test data with its real CA as anchor."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from asn1crypto import pem

from tests.conftest import DATA, PkiService
from tests.support import make_settings, pem_header, proxy_header, running_server

pytestmark = pytest.mark.integration


def as_pem(data: bytes) -> bytes:
    return data if pem.detect(data) else pem.armor("CERTIFICATE", data)


async def test_r1_1_revocation_service_down_require_refuses(
    dev_pki, pki_service: PkiService, pki_down: None, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url, revocation="require")
    async with running_server(settings, dev_pki) as server, server.client("qualified-qscd") as c:
        async with c.get("/api/v1/session") as response:
            assert response.status == 403
            body = await response.json(content_type=None)
        assert body["reason"] == "revocation_unknown"
        # not cached: the same certificate is checked again at the next request
        async with c.get("/api/v1/session") as response:
            assert response.status == 403
        refused = await server.services.pool.fetchval(
            "SELECT count(*) FROM audit_events WHERE outcome = 'refused'"
        )
    assert refused == 2


async def test_r1_1_revocation_service_down_soft_fail_records_it(
    dev_pki, pki_service: PkiService, pki_down: None, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url, revocation="soft-fail")
    async with running_server(settings, dev_pki) as server, server.client("qualified-qscd") as c:
        async with c.get("/api/v1/session") as response:
            assert response.status == 200
            body = await response.json()
        audit = await server.services.pool.fetchval(
            "SELECT details FROM audit_events WHERE action = 'auth.certificate'"
        )
    validation = body["validation"]
    assert validation["revocation_policy"] == "soft-fail"
    assert validation["revocation_source"] == "none"
    assert validation["soft_failures"], "the soft failure must be recorded"
    assert any("OCSP" in failure for failure in validation["soft_failures"])
    assert audit["check"]["soft_failures"] == validation["soft_failures"]


async def test_r1_1_soft_fail_still_refuses_a_revoked_certificate(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    settings = make_settings(dev_pki, database_url, revocation="soft-fail")
    async with running_server(settings, dev_pki) as server, server.client("revoked") as c:
        async with c.get("/api/v1/session") as response:
            assert response.status == 403
            assert (await response.json(content_type=None))["reason"] == "revoked"


async def test_r1_1_outside_ca_added_with_trust_anchors(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """A qualified CA that publishes no OCSP/CRL: accepted under soft-fail, not under require."""
    outside_root = dev_pki.cert("outside-root-ca")
    soft = make_settings(
        dev_pki, database_url, trust_anchors=(outside_root,), revocation="soft-fail"
    )
    async with running_server(soft, dev_pki) as server, server.client("outside-qualified") as c:
        async with c.get("/api/v1/session") as response:
            assert response.status == 200
            body = await response.json()
    assert body["loa"] == "high"
    assert body["validation"]["anchor"].startswith("CN=Outside Qualified Root CA")

    strict = make_settings(dev_pki, database_url, trust_anchors=(outside_root,))
    async with running_server(strict, dev_pki) as server, server.client("outside-qualified") as c:
        async with c.get("/api/v1/session") as response:
            assert response.status == 403
            assert (await response.json(content_type=None))["reason"] == "revocation_unknown"

    # without the anchor the TLS handshake itself refuses the certificate
    none = make_settings(dev_pki, database_url, revocation="soft-fail")
    async with running_server(none, dev_pki) as server, server.client("outside-qualified") as c:
        with pytest.raises(aiohttp.ClientError):
            async with c.get("/api/v1/session") as response:
                await response.read()


@pytest.mark.parametrize(
    ("cert", "anchor"),
    [
        ("certificates/CZ.cer", "certificates/CZ_CA.cer"),  # I.CA QC on QSCD, 2015-2016
        ("certificates/sk_user.cer", "certificates/sk_ca.cer"),  # Slovak eID QC, to 2020
    ],
)
async def test_r1_1_real_qualified_certificates_are_expired_now(
    cert: str, anchor: str, dev_pki, pki_service: PkiService, database_url: str, tmp_path: Path
) -> None:
    """Real public QCs with their real issuing CA as anchor: chain ok, but long expired."""
    anchor_pem = tmp_path / "anchor.pem"
    anchor_pem.write_bytes(as_pem((DATA / anchor).read_bytes()))
    leaf_pem = tmp_path / "leaf.pem"
    leaf_pem.write_bytes(as_pem((DATA / cert).read_bytes()))
    settings = make_settings(
        dev_pki,
        database_url,
        tls=False,
        revocation="soft-fail",
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        trust_anchors=(anchor_pem,),
    )
    async with running_server(settings, dev_pki) as server, server.client() as client:
        async with client.get("/api/v1/session", headers=pem_header(leaf_pem)) as response:
            assert response.status == 403
            body = await response.json(content_type=None)
    assert body["reason"] == "expired"
    assert body["not_after"] < "2021"


async def test_r9_5_health_and_readiness(
    dev_pki, pki_service: PkiService, database_url: str, pg_admin_url: str
) -> None:
    settings = make_settings(dev_pki, database_url)
    async with running_server(settings, dev_pki) as server, server.client(None) as client:
        async with client.get("/healthz") as response:
            assert response.status == 200
        async with client.get("/readyz") as response:
            assert response.status == 200
        # take the database away: connections refused and the open ones terminated
        db = urlsplit(database_url).path.lstrip("/")
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db
            )
            async with client.get("/readyz") as response:
                assert response.status == 503
            async with client.get("/healthz") as response:
                assert response.status == 200
        finally:
            await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
            await admin.close()
        async with client.get("/readyz") as response:
            assert response.status == 200


async def test_r1_7_header_for_trusted_proxy_uses_the_leaf_only(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """nginx passes only the leaf; the issuing CA is found from configuration."""
    settings = make_settings(
        dev_pki,
        database_url,
        tls=False,
        trusted_proxies=(ipaddress.ip_network("::1/128"), ipaddress.ip_network("127.0.0.1/32")),
    )
    async with running_server(settings, dev_pki) as server, server.client() as client:
        headers = proxy_header(dev_pki, "qualified")
        async with client.get("/api/v1/session", headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["loa"] == "substantial"
