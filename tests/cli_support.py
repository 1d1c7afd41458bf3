"""Running the ``vep`` command from tests: a clean environment, a command, a server."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT, free_port


def vep_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEP_")}
    env["VEP_EVIDENCE_SCHEMA_CHECK"] = "1"  # every evidence a test seals meets the XSD (R6.1)
    env.update(extra)
    return env


def vep(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_serve(
    dev_pki, database_url: str, **extra: str
) -> tuple[int, dict[str, str], subprocess.Popen[str]]:  # type: ignore[no-untyped-def]
    """`vep serve` on a free port, once it has said it is serving."""
    port = free_port()
    # The lifecycle jobs write audit records of their own (test_jobs.py tests them).
    env = vep_env(
        VEP_DATABASE_URL=database_url,
        VEP_DATA_DIR=str(dev_pki.directory.parent),
        VEP_LISTEN=f"127.0.0.1:{port}",
        **{"VEP_SCHEDULER": "outbox", **extra},
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert f"serving https://127.0.0.1:{port}" in server.stdout.readline()
    return port, env, server
