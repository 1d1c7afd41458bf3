"""Test set-up from scratch: a private PostgreSQL cluster, a fresh development PKI with its
live OCSP/CRL/TSA service, and real TLS servers — nothing mocked.

- The cluster is started with ``ops/dev/pg.sh`` in a temporary directory (or taken from
  ``VEPTEST_DATABASE_URL``); every test gets its own database cloned from a migrated
  template, so tests cannot see each other's rows.
- The PKI is generated into a temporary directory with a free port for its service, which
  runs as a subprocess (``vep dev-pki serve``) so a test can stop it and revoke at it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import uvloop

from server.devpki.generate import DevPki, generate
from server.store import migrate

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every test runs on the event loop ``vep serve`` runs on by default (uvloop): the
    in-process servers, their TLS and the clients alike."""
    return {"uvloop": uvloop.new_event_loop}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("VEPTEST_DATABASE_URL")
    if external:
        yield external
        return
    data_dir = tmp_path_factory.mktemp("pgdata")
    script = ROOT / "ops" / "dev" / "pg.sh"
    out = subprocess.run(
        [str(script), "start", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PG_DISPOSABLE": "1"},
    )
    dsn = out.stdout.strip().splitlines()[-1]
    try:
        yield dsn
    finally:
        subprocess.run([str(script), "destroy", str(data_dir)], check=False, capture_output=True)


_T = TypeVar("_T")


def _on_own_loop(work: Coroutine[Any, Any, _T]) -> _T:
    """Run set-up work on a loop of its own. The database fixtures are plain (sync)
    fixtures for a reason: sync tests use them too, and pytest-asyncio 1.5 tears a
    loop-managed fixture down between a sync and an async test when loop factories are
    configured (pytest-asyncio#1501, fixed after 1.5.0) — running one module alone then
    failed with "The fixture value for template_url is not available"."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


async def _create_template(admin_url: str) -> str:
    name = f"vep_template_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(admin_url, name))
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    return name


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> Iterator[str]:
    name = _on_own_loop(_create_template(pg_admin_url))
    try:
        yield with_database(pg_admin_url, name)
    finally:
        _on_own_loop(_drop_database(pg_admin_url, name))


async def _create_database(admin_url: str, template: str | None) -> str:
    name = f"vep_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else " TEMPLATE template0"
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return name


async def _drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def database_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    template = urlsplit(template_url).path.lstrip("/")
    name = _on_own_loop(_create_database(pg_admin_url, template))
    try:
        yield with_database(pg_admin_url, name)
    finally:
        _on_own_loop(_drop_database(pg_admin_url, name))


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    """A database with no tables at all (for the migration tests)."""
    name = _on_own_loop(_create_database(pg_admin_url, None))
    try:
        yield with_database(pg_admin_url, name)
    finally:
        _on_own_loop(_drop_database(pg_admin_url, name))


# --- the development PKI and its live services -------------------------------------------


class PkiService:
    """The dev PKI's OCSP/CRL/TSA service as a subprocess a test may stop and restart."""

    def __init__(self, pki: DevPki) -> None:
        self.pki = pki
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "dev-pki", "serve", "--dir", str(self.pki.directory)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.pki.admin_url("healthz"), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the dev PKI service did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def revoke(self, cert_label: str, arch: str = "vep-dev") -> None:
        request = urllib.request.Request(
            self.pki.admin_url(f"revoke/{arch}/{cert_label}"), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    directory = tmp_path_factory.mktemp("data") / "pki"
    return generate(directory, f"http://127.0.0.1:{free_port()}")


@pytest.fixture(scope="session")
def pki_service(dev_pki: DevPki) -> Iterator[PkiService]:
    service = PkiService(dev_pki)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def pki_down(pki_service: PkiService) -> Iterator[None]:
    """The OCSP/CRL service is stopped for this test and started again afterwards."""
    pki_service.stop()
    try:
        yield
    finally:
        pki_service.start()
