"""R9.1: the audit chain is sealed, so that cutting off its newest records is detected — the
one thing the hash chain alone cannot show."""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path

import pytest

from server.evidence.local_tsa import local_tsa_for
from server.evidence.signer import FileKeySigner
from server.export.archive import ProviderSeal
from server.http.context import JOBS
from server.services.audit_seal import statement, verify_seals
from server.store.audit_seals import AuditSealStore
from server.validate.anchors import load_anchors
from tests.cli_support import vep, vep_env
from tests.conftest import PkiService
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as running:
        yield running


async def seal(server: RunningServer) -> int:
    result = await server.app[JOBS].run("audit-seal", manual=True)
    assert result.status == "ran", result
    return result.items


async def login(server: RunningServer, identity: str) -> None:
    async with server.client(identity) as client, client.get("/api/v1/session") as r:
        assert r.status == 200  # a certificate check and a session start: audit records


async def test_r9_1_the_head_is_sealed_and_a_cut_off_tail_is_detected(
    server: RunningServer, dev_pki, database_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pool = server.services.pool
    store = AuditSealStore(pool)
    anchors = load_anchors([server.pki.root])
    ours = load_anchors([server.pki.cert("provider-seal")])
    assert await seal(server) == 0  # nothing to seal yet
    await login(server, "qualified-qscd")
    assert await seal(server) == 1
    assert await seal(server) == 0  # the head did not move
    await login(server, "qualified")
    assert await seal(server) == 1
    head = await pool.fetchval("SELECT max(seq) FROM audit_events")
    report = await verify_seals(store, anchors, ours)
    assert (report.ok, report.seals, report.last_seq) == (True, 2, head)

    # an independent tool accepts the seal over the exact statement
    last = await store.last()
    assert last is not None
    (tmp_path / "statement").write_bytes(statement(last.seq, last.hash))
    (tmp_path / "seal.p7s").write_bytes(last.signature)
    command = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any"]
    command += ["-in", str(tmp_path / "seal.p7s"), "-content", str(tmp_path / "statement")]
    command += ["-CAfile", str(server.pki.root), "-out", "/dev/null"]
    openssl = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False
    )
    assert openssl.returncode == 0, openssl.stderr

    # the owner cuts off the newest records: the chain that is left is still a valid chain,
    # but it ends before the record the head row names (found in review: not checked)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
        await conn.execute("DELETE FROM audit_events WHERE seq >= $1", head - 1)
        await conn.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
    chain = await server.services.audit.verify()
    assert (chain.ok, chain.first_bad_seq, chain.problem) == (False, head - 1, "record missing")
    env = vep_env(VEP_DATABASE_URL=database_url, VEP_DATA_DIR=str(dev_pki.directory.parent))
    cli = vep("verify-audit", env=env)
    assert cli.returncode == 1 and f"BROKEN at record {head - 1}" in cli.stderr
    # and rewrites the head row too: now only the seals show it
    await pool.execute(
        """UPDATE audit_head SET seq = e.seq, hash = e.hash
             FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) e"""
    )
    assert (await server.services.audit.verify()).ok
    report = await verify_seals(store, anchors, ours)
    assert (report.ok, report.problem) == (False, f"sealed record {head} is missing")
    cli = vep("verify-audit", env=env)
    assert cli.returncode == 1 and f"sealed record {head} is missing" in cli.stderr


async def test_r9_1_a_seal_is_not_trusted_without_the_anchor(server: RunningServer) -> None:
    await login(server, "qualified-qscd")
    assert await seal(server) == 1
    ours = load_anchors([server.pki.cert("provider-seal")])
    report = await verify_seals(AuditSealStore(server.services.pool), [], ours)
    assert not report.ok and "not trusted" in str(report.problem)


async def test_r9_1_a_seal_by_another_qualified_seal_is_not_the_providers(
    server: RunningServer, dev_pki
) -> None:  # type: ignore[no-untyped-def]
    """Found in review: a seal had only to chain to the anchors, which issue every
    subscriber's certificate too; whoever can write the table could seal a shortened chain
    with another company's qualified seal, time-stamped by the real TSA."""
    pool = server.services.pool
    await login(server, "qualified-qscd")
    assert await seal(server) == 1
    anchors = load_anchors([server.pki.root])
    ours = load_anchors([server.pki.cert("provider-seal")])
    store = AuditSealStore(pool)
    last = await store.last()
    assert last is not None
    other = FileKeySigner(dev_pki.directory / "legal-seal.chain.pem", dev_pki.key("legal-seal"))
    forged = await ProviderSeal(other, local_tsa_for(dev_pki.directory)).seal(
        io.BytesIO(statement(last.seq, last.hash))
    )
    async with pool.acquire() as conn, conn.transaction():  # the owner, triggers off
        await conn.execute("ALTER TABLE audit_seals DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_seals SET signature = $1", forged)
        await conn.execute("ALTER TABLE audit_seals ENABLE TRIGGER USER")
    report = await verify_seals(store, anchors, ours)
    assert (report.ok, report.problem) == (
        False,
        f"the seal over record {last.seq} is not the provider's",
    )


async def test_r9_1_seals_made_before_a_seal_renewal_still_verify(
    server: RunningServer, dev_pki, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    """Review of the pinning: after the provider's seal certificate is renewed (here: the
    configuration names another one), the older seals are named with --seal-cert."""
    await login(server, "qualified-qscd")
    assert await seal(server) == 1
    renewed = vep_env(
        VEP_DATABASE_URL=database_url,
        VEP_DATA_DIR=str(dev_pki.directory.parent),
        VEP_SEAL_CERT=str(dev_pki.directory / "legal-seal.chain.pem"),
        VEP_SEAL_KEY=str(dev_pki.key("legal-seal")),
    )
    refused = vep("verify-audit", env=renewed)
    assert refused.returncode == 1 and "is not the provider's" in refused.stderr
    before = ["--seal-cert", str(dev_pki.cert("provider-seal"))]
    accepted = vep("verify-audit", *before, env=renewed)
    assert accepted.returncode == 0, accepted.stderr
    unreadable = vep("verify-audit", "--seal-cert", "/nonexistent", env=renewed)
    assert unreadable.returncode == 2
