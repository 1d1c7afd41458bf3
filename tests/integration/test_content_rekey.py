"""A master-key rotation (R5.5): with the old key retired every node still reads every
delivery; ``vep admin content-rekey`` wraps each live delivery's data key under the new
key (and seals a message kept in clear from before messages were sealed); after that the
old key can be destroyed and nothing is lost. Before, there was one master key for ever:
a leaked key could not be replaced, and backups stayed readable as long as it lived."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from server.settings import Settings
from tests.cli_support import vep, vep_env
from tests.conftest import PkiService
from tests.integration.test_deliveries import COURT, DEJAN, PDF, get, send
from tests.mailbox_support import open_delivery_world
from tests.support import RunningServer, make_settings, running_server
from tests.unit.test_master_key_ring import master_key_file

pytestmark = pytest.mark.integration
OLD_MESSAGE = "Stara, v razumljivi obliki."


async def _reads(server: RunningServer, did: str) -> tuple[int, bytes, str | None]:
    """What Dejan gets: the part's status and bytes, and the message."""
    status, data, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}/parts/0")
    _, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{did}")
    return status, data, json.loads(body).get("message")


async def test_r5_5_a_master_key_is_rotated_without_losing_a_delivery(
    dev_pki, pki_service: PkiService, database_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = master_key_file(tmp_path / "master-1.key")
    second = master_key_file(tmp_path / "master-2.key")
    before: Settings = make_settings(dev_pki, database_url, content_key_file=first)
    async with running_server(before, dev_pki) as server:
        await open_delivery_world(server)
        status, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
        assert status == 201, sent
        old = sent["delivery_id"]
        # a row from before messages were sealed keeps its text in clear
        await server.services.pool.execute(
            "UPDATE deliveries SET message = $2 WHERE delivery_id = $1::uuid", old, OLD_MESSAGE
        )
        # and one disposed of (R8.1): no key left, nothing to wrap
        _, gone = await send(server, "qualified-qscd", COURT, [DEJAN])
        await server.services.pool.execute(
            """UPDATE deliveries SET content_purged_at = now(), wrapped_key = '\\x',
                      message = '' WHERE delivery_id = $1::uuid""",
            gone["delivery_id"],
        )

    rotated = replace(
        before, content_key_file=second, content_key_version=2, content_retired_keys=((1, first),)
    )
    only_new = replace(rotated, content_retired_keys=())
    async with running_server(only_new, dev_pki) as server:
        # without the old key, the old delivery does not open (what the rotation must avoid)
        status, body, _ = await get(server, "delegate", f"/api/v1/deliveries/{old}/parts/0")
        assert (status, json.loads(body)["reason"]) == (503, "content_unavailable")
    async with running_server(rotated, dev_pki) as server:
        assert await _reads(server, old) == (200, PDF, OLD_MESSAGE)
        status, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
        new = sent["delivery_id"]
        versions = await server.services.pool.fetch(
            "SELECT delivery_id::text, key_version FROM deliveries"
        )
        assert {r["delivery_id"]: r["key_version"] for r in versions} == {
            old: 1,
            gone["delivery_id"]: 1,
            new: 2,
        }

    env = vep_env(
        VEP_DATABASE_URL=database_url,
        VEP_DATA_DIR=str(dev_pki.directory.parent),
        VEP_CONTENT_KEY_FILE=str(second),
        VEP_CONTENT_KEY_VERSION="2",
        VEP_CONTENT_RETIRED_KEYS=f"1:{first}",
    )
    result = vep("admin", "content-rekey", "--operator", "maja", env=env)
    assert result.returncode == 0, result.stderr
    assert "2 deliveries with content: 1 key(s) wrapped under master key version 2" in (
        result.stdout
    )
    assert "1 message(s) sealed" in result.stdout
    again = vep("admin", "content-rekey", "--operator", "maja", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 key(s) wrapped" in again.stdout and "0 message(s) sealed" in again.stdout

    async with running_server(only_new, dev_pki) as server:
        pool = server.services.pool
        rows = await pool.fetch(
            "SELECT key_version, message FROM deliveries WHERE content_purged_at IS NULL"
        )
        assert len(rows) == 2 and {r["key_version"] for r in rows} == {2}
        assert all(r["message"].startswith("vep-sealed:1:") for r in rows)
        assert await _reads(server, old) == (200, PDF, OLD_MESSAGE)
        assert await _reads(server, new) == (200, PDF, "Glej prilogo.")
        audited = await pool.fetch(
            "SELECT actor, details FROM audit_events WHERE action = 'content.rekeyed'"
        )
        assert [(a["actor"], a["details"]["deliveries"]) for a in audited] == [
            ("operator:maja", [old])
        ]
        runs = await pool.fetch(
            "SELECT details FROM audit_events WHERE action = 'content.rekey_run' ORDER BY seq"
        )
        assert [(r["details"]["rewrapped"], r["details"]["left"]) for r in runs] == [
            (1, []),
            (0, []),
        ]
        assert (await server.services.audit.verify()).ok


async def test_r5_5_a_row_no_key_opens_is_reported_and_left(
    dev_pki, pki_service: PkiService, database_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = master_key_file(tmp_path / "master-1.key")
    second = master_key_file(tmp_path / "master-2.key")
    before = make_settings(dev_pki, database_url, content_key_file=first)
    async with running_server(before, dev_pki) as server:
        await open_delivery_world(server)
        status, sent = await send(server, "qualified-qscd", COURT, [DEJAN])
        assert status == 201, sent
    # the operator forgot to list the old key
    env = vep_env(
        VEP_DATABASE_URL=database_url,
        VEP_DATA_DIR=str(dev_pki.directory.parent),
        VEP_CONTENT_KEY_FILE=str(second),
        VEP_CONTENT_KEY_VERSION="2",
    )
    result = vep("admin", "content-rekey", "--operator", "maja", env=env)
    assert result.returncode == 1
    assert sent["delivery_id"] in result.stderr and "keep the retired keys" in result.stderr
    # a node still on the old key only (or one whose ring repeats a version) is refused
    # before anything is read
    twice = vep(
        "admin",
        "content-rekey",
        "--operator",
        "maja",
        env={**env, "VEP_CONTENT_RETIRED_KEYS": f"2:{first}"},
    )
    assert twice.returncode == 2 and "VEP_CONTENT_RETIRED_KEYS" in twice.stderr
    async with running_server(before, dev_pki) as server:
        row = await server.services.pool.fetchrow("SELECT key_version FROM deliveries")
        assert row is not None and row["key_version"] == 1
        status, data, _ = await get(
            server, "delegate", f"/api/v1/deliveries/{sent['delivery_id']}/parts/0"
        )
        assert (status, data) == (200, PDF)
