"""The ``vep`` command as an operator runs it: a bad setting stops the start naming the key;
``vep serve`` answers curl with a PKCS#12 identity (the issue's "done when")."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time

import pytest

from tests.cli_support import start_serve as _start_serve
from tests.cli_support import vep as _vep
from tests.cli_support import vep_env as _env
from tests.conftest import PkiService, free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("variable", "value"),
    [("VEP_REVOCATION", "sometimes"), ("VEP_LISTEN", "nowhere"), ("VEP_TLS", "off")],
)
def test_bad_setting_stops_serve_naming_the_key(
    variable: str, value: str, database_url: str
) -> None:
    result = _vep("serve", env=_env(VEP_DATABASE_URL=database_url, **{variable: value}))
    assert result.returncode == 2
    assert variable in result.stderr
    assert "serving" not in result.stdout


def test_unknown_key_in_config_file_stops_the_start(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "vep.toml"
    config.write_text('revocation = "require"\nlisten_adress = "127.0.0.1:1"\n')
    result = _vep("check-config", env=_env(VEP_DATABASE_URL=database_url, VEP_CONFIG=str(config)))
    assert result.returncode == 2
    assert "listen_adress" in result.stderr


def _curl(pki_dir, port: int, identity: str) -> tuple[int, dict[str, object]]:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
            "--cacert",
            str(pki_dir / "root-ca.pem"),
            "--cert-type",
            "P12",
            "--cert",
            f"{pki_dir / (identity + '.p12')}:vep",
            f"https://127.0.0.1:{port}/api/v1/session",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_serve_answers_curl_with_pkcs12_identities(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    port, env, server = _start_serve(dev_pki, database_url)
    try:
        status, body = _curl(dev_pki.directory, port, "qualified-qscd")
        assert (status, body["loa"]) == (200, "high")
        status, body = _curl(dev_pki.directory, port, "non-qualified")
        assert (status, body["reason"]) == (403, "not_qualified")
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=20)
    assert server.returncode == 0
    # structured logs: JSON lines, and no certificate or cookie material in them
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry.get("route") == "/api/v1/session" for entry in lines)
    assert "BEGIN CERTIFICATE" not in stderr and "vep_session" not in stderr

    audit = _vep("verify-audit", env=env)
    assert audit.returncode == 0, audit.stderr
    assert "intact (3 records;" in audit.stdout  # a success, its session start, a refusal


def test_migrate_command_is_idempotent(database_url: str) -> None:
    result = _vep("migrate", env=_env(VEP_DATABASE_URL=database_url))
    assert result.returncode == 0
    assert "nothing (up to date)" in result.stdout


def test_serve_refuses_to_start_without_database(dev_pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = _env(
        VEP_DATABASE_URL=f"postgresql://nobody@/none?host={tmp_path}",
        VEP_DATA_DIR=str(dev_pki.directory.parent),
        VEP_LISTEN=f"127.0.0.1:{free_port()}",
    )
    started = time.monotonic()
    result = _vep("serve", env=env, timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - started < 60


async def test_r2_3_admin_contract_received_and_public_body(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """Operator actions go through the CLI and are audited with the operator's name."""
    from tests.mailbox_support import legal, open_mailbox
    from tests.support import make_settings, running_server

    env = _env(VEP_DATABASE_URL=database_url, VEP_DATA_DIR=str(dev_pki.directory.parent))
    async with running_server(make_settings(dev_pki, database_url), dev_pki) as server:
        opened = await open_mailbox(server, "delegate", legal("primer"))
        assert opened["state"] == "temporary"
        pool = server.services.pool

        result = _vep("admin", "contract-received", "primer@vep.si", "--operator", "maja", env=env)
        assert (result.returncode, result.stdout.strip()) == (0, "vep: primer@vep.si is now active")
        again = _vep("admin", "contract-received", "primer@vep.si", "--operator", "maja", env=env)
        assert again.returncode == 1 and "not_temporary" in again.stderr
        missing = _vep("admin", "public-body", "nobody@vep.si", "on", "--operator", "maja", env=env)
        assert missing.returncode == 1 and "not_found" in missing.stderr
        flag = _vep("admin", "public-body", "primer@vep.si", "on", "--operator", "maja", env=env)
        assert flag.returncode == 0
        assert await pool.fetchval("SELECT public_body FROM mailboxes") is True
        actors = await pool.fetch(
            "SELECT action, actor FROM audit_events WHERE actor LIKE 'operator:%' ORDER BY seq"
        )
    assert [(a["action"], a["actor"]) for a in actors] == [
        ("mailbox.state", "operator:maja"),
        ("mailbox.public_body", "operator:maja"),
    ]
    unnamed = _vep("admin", "public-body", "primer@vep.si", "off", env=env)
    assert unnamed.returncode == 2 and "--operator" in unnamed.stderr


def test_sign_contract_helper_signs_for_people_without_a_tool(dev_pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`vep sign-contract` produces what PUT …/contract accepts (R2.1 done-when)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from tests.mailbox_support import sample_contract_pdf

    pdf = tmp_path / "contract.pdf"
    pdf.write_bytes(sample_contract_pdf())
    env = _env()
    for flag, out in (("--pades", "signed.pdf"), ("--cades", "contract.p7s")):
        result = _vep(
            "sign-contract",
            "--p12",
            str(dev_pki.p12("qualified-qscd")),
            flag,
            str(pdf),
            str(tmp_path / out),
            env=env,
        )
        assert result.returncode == 0, result.stderr
    signed = (tmp_path / "signed.pdf").read_bytes()
    assert signed.startswith(pdf.read_bytes())  # an incremental update of the issued bytes
    assert len(PdfFileReader(io.BytesIO(signed)).embedded_signatures) == 1
    assert (tmp_path / "contract.p7s").read_bytes()[:1] == b"\x30"  # DER SEQUENCE
    wrong = _vep(
        "sign-contract",
        "--p12",
        str(dev_pki.p12("qualified-qscd")),
        "--password",
        "nope",
        "--pades",
        str(pdf),
        str(tmp_path / "x.pdf"),
        env=env,
    )
    assert wrong.returncode == 1


def _workers(parent: int) -> list[str]:
    """The pids of ``vep serve``'s worker processes (not multiprocessing's resource
    tracker), once the second has had a moment to bind."""
    time.sleep(1.0)
    return subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "spawn_main"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()


def test_serve_with_two_workers_shares_the_port_and_stops_cleanly(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """VEP_WORKERS=2: two processes on one port (SO_REUSEPORT); SIGINT stops both."""
    port, _, server = _start_serve(dev_pki, database_url, VEP_WORKERS="2")
    try:
        children = _workers(server.pid)
        assert len(children) == 2
        for _ in range(4):
            status, body = _curl(dev_pki.directory, port, "qualified-qscd")
            assert (status, body["loa"]) == (200, "high")
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert server.returncode == 0
    for pid in children:  # the parent joined its workers before it exited
        assert subprocess.run(["kill", "-0", pid], capture_output=True).returncode != 0


def test_workers_stop_when_serve_is_killed_outright(
    dev_pki, pki_service: PkiService, database_url: str
) -> None:
    """A parent killed with SIGKILL cannot stop its workers; each notices and stops itself
    rather than serving on, unsupervised, on the shared port."""
    port, _, server = _start_serve(dev_pki, database_url, VEP_WORKERS="2")
    try:
        children = _workers(server.pid)
        assert len(children) == 2
        assert _curl(dev_pki.directory, port, "qualified-qscd")[0] == 200
    finally:
        server.kill()
        server.communicate(timeout=30)

    def alive() -> list[str]:
        return [p for p in children if subprocess.run(["kill", "-0", p]).returncode == 0]

    deadline = time.monotonic() + 30  # a bound for a slow machine, not a speed claim
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    leftover = alive()
    for pid in leftover:  # a failing run must not leave them serving
        os.kill(int(pid), signal.SIGKILL)
    assert leftover == []
