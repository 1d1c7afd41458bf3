"""R8.5: ``verify-export`` accepts only the provider's own seal, time-stamped, over a
manifest that lists every file an export writes.

Found in review: the seal had only to chain to the trust anchors, and those issue every
subscriber's certificate too — any holder of a qualified signature or seal could hand a
successor an archive of their own making, and it was reported intact. Here the forger has
a real qualified seal of another company (``legal-seal``) and the real time-stamp
authority, so only the pin refuses it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from server.evidence.local_tsa import local_tsa_for
from server.evidence.signer import FileKeySigner
from server.export import verify_archive
from server.export.archive import ProviderSeal
from server.export.tables import COVERED, TABLES
from server.validate.anchors import load_anchors
from tests.cli_support import vep, vep_env
from tests.conftest import PkiService, free_port
from tests.integration.test_deliveries import COURT, DEJAN, send
from tests.integration.test_wind_down import cli_env, effective, lifecycle
from tests.mailbox_support import open_delivery_world
from tests.support import RunningServer, make_settings, running_server

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(dev_pki, pki_service: PkiService, database_url: str):  # type: ignore[no-untyped-def]
    settings = make_settings(dev_pki, database_url, lifecycle=lifecycle(dev_pki))
    async with running_server(settings, dev_pki) as running:
        await open_delivery_world(running)
        yield running


def seal_of(dev_pki, name: str, stamped: bool = True) -> ProviderSeal:  # type: ignore[no-untyped-def]
    signer = FileKeySigner(dev_pki.directory / f"{name}.chain.pem", dev_pki.key(name))
    return ProviderSeal(signer, local_tsa_for(dev_pki.directory) if stamped else None)


async def resealed(archive: Path, to: Path, seal: ProviderSeal, edit=None) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``archive`` whose manifest (changed by ``edit``) ``seal`` sealed anew."""
    shutil.copytree(archive, to)
    manifest = (to / "manifest.json").read_bytes()
    if edit is not None:
        document = json.loads(manifest)
        edit(document, to)
        manifest = json.dumps(document).encode()
        (to / "manifest.json").write_bytes(manifest)
    (to / "manifest.json.p7s").write_bytes(await seal.seal(io.BytesIO(manifest)))
    return to


async def test_r8_5_verify_export_accepts_only_the_providers_time_stamped_seal(
    server: RunningServer, dev_pki, database_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
    await effective(server)
    archive = tmp_path / "archive"
    env = cli_env(dev_pki, database_url)
    exported = vep("admin", "export", "--to", str(archive), "--operator", "maja", env=env)
    assert exported.returncode == 0, exported.stderr
    anchors = load_anchors([dev_pki.root])
    provider = load_anchors([dev_pki.cert("provider-seal")])
    assert (await verify_archive(archive, anchors, provider)).ok
    successor = vep_env(VEP_DATA_DIR=str(dev_pki.directory.parent))  # the configured seal
    assert vep("admin", "verify-export", str(archive), env=successor).returncode == 0

    # another company's qualified seal, time-stamped by the real TSA: intact and trusted
    forged = await resealed(archive, tmp_path / "forged", seal_of(dev_pki, "legal-seal"))
    result = await verify_archive(forged, anchors, provider)
    assert not result.ok and "not the provider's" in str(result.problem), result
    refused = vep("admin", "verify-export", str(forged), env=successor)
    assert refused.returncode == 1 and "not the provider's" in refused.stderr
    # the successor names the seal it was given: the provider's archive is not that one's
    pin = ["--seal-cert", str(dev_pki.cert("legal-seal"))]
    other = vep("admin", "verify-export", str(archive), *pin, env=successor)
    assert other.returncode == 1 and "not the provider's" in other.stderr
    missing = vep(
        "admin", "verify-export", str(archive), "--seal-cert", "/nonexistent", env=successor
    )
    assert missing.returncode == 2

    # the provider's key without the time-stamp: CAdES-B only
    unstamped = await resealed(
        archive, tmp_path / "unstamped", seal_of(dev_pki, "provider-seal", stamped=False)
    )
    result = await verify_archive(unstamped, anchors, provider)
    assert result.problem == "the seal has no signature time-stamp (CAdES-B-T)"

    # a manifest that leaves out a file every export writes, sealed properly
    def leave_out_persons(document: dict, to: Path) -> None:  # type: ignore[type-arg]
        document["files"] = [f for f in document["files"] if f["path"] != "persons.jsonl"]
        (to / "persons.jsonl").unlink()

    short = await resealed(
        archive, tmp_path / "short", seal_of(dev_pki, "provider-seal"), leave_out_persons
    )
    result = await verify_archive(short, anchors, provider)
    assert result.problem == "manifest.json does not list persons.jsonl"

    def as_format_1(document: dict, to: Path) -> None:  # type: ignore[type-arg]
        """An archive made before receipts, registrations and notices were exported."""
        gone = {"receipts.jsonl", "registrations.jsonl", "wind_down_notices.jsonl"}
        document["format"] = "vep-export/1"
        document["files"] = [f for f in document["files"] if f["path"] not in gone]
        for name in gone:
            (to / name).unlink()

    older = await resealed(
        archive, tmp_path / "older", seal_of(dev_pki, "provider-seal"), as_format_1
    )
    assert (await verify_archive(older, anchors, provider)).ok  # review: it was refused

    def list_twice(document: dict, to: Path) -> None:  # type: ignore[type-arg]
        document["files"].append(document["files"][0])

    twice = await resealed(
        archive, tmp_path / "twice", seal_of(dev_pki, "provider-seal"), list_twice
    )
    result = await verify_archive(twice, anchors, provider)
    assert result.problem == "manifest.json lists a file twice"

    # what is not listed is refused, a FIFO too, and a name cannot rewrite the verdict
    (archive / "x\rvep: export intact").write_text("slipped in")
    result = await verify_archive(archive, anchors, provider)
    assert result.problem == "'x\\rvep: export intact' is not in the manifest"
    (archive / "x\rvep: export intact").unlink()
    os.mkfifo(archive / "pipe")
    result = await verify_archive(archive, anchors, provider)
    assert result.problem == "pipe is not in the manifest"


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_r8_5_a_failed_export_leaves_nothing_and_is_on_record(
    server: RunningServer, dev_pki, database_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Found in review: the files were written straight into ``--to`` and sealed last, so
    a TSA that did not answer left every record there unsealed, with an empty seal file,
    and ``--to`` refused the next attempt. Now the archive appears whole or not at all,
    and the failure is audited (R9.1: the attempt read the records)."""
    assert (await send(server, "qualified-qscd", COURT, [DEJAN]))[0] == 201
    await effective(server)
    archive = tmp_path / "archive"
    archive.mkdir()  # an empty directory is a valid target
    env = cli_env(dev_pki, database_url)
    no_tsa = {**env, "VEP_TSA_URL": f"http://127.0.0.1:{free_port()}/"}
    failed = vep("admin", "export", "--to", str(archive), "--operator", "maja", env=no_tsa)
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert entries(tmp_path) == ["archive"] and entries(archive) == []
    assert "the export failed" in failed.stderr
    # written inside its target, not beside it (review: a mount point, or a parent the
    # operator may not write to, broke an export written beside it)
    ended = await server.services.pool.fetch(
        """SELECT action, outcome, details FROM audit_events
            WHERE action LIKE 'export.%' ORDER BY seq"""
    )
    assert [(r["action"], r["outcome"]) for r in ended] == [
        ("export.start", "success"),
        ("export.failed", "failure"),
    ]
    assert set(ended[1]["details"]) == {"to", "error"}
    nowhere = tmp_path / "new" / "archive"  # made by the export: gone again on failure
    failed = vep("admin", "export", "--to", str(nowhere), "--operator", "maja", env=no_tsa)
    assert failed.returncode == 1 and not nowhere.exists()
    exported = vep("admin", "export", "--to", str(archive), "--operator", "maja", env=env)
    assert exported.returncode == 0, exported.stderr
    assert not [e for e in entries(archive) if e.startswith(".unfinished")]
    provider = load_anchors([dev_pki.cert("provider-seal")])
    assert (await verify_archive(archive, load_anchors([dev_pki.root]), provider)).ok


async def test_r8_5_the_export_covers_every_table(server: RunningServer) -> None:
    """Every table of the schema is exported, or left out with its reason
    (:data:`server.export.tables.COVERED`): a new table must be decided on."""
    rows = await server.services.pool.fetch(
        """SELECT table_name FROM information_schema.tables
            WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"""
    )
    assert {r["table_name"] for r in rows} == set(COVERED)
    written = {t.file for t in TABLES} | {"evidence/", "audit.jsonl"}
    for table, where in COVERED.items():
        if not where.startswith("not exported"):
            assert where.split()[0] in written, table
