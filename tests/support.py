"""Real TLS servers and clients for the tests: the app on a real socket, clients with keys."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.app import create_app
from server.clock import ManualClock
from server.devpki.generate import DevPki
from server.http.context import SERVICES
from server.services.container import Services
from server.settings import Settings
from server.settings_lifecycle import LifecycleSettings
from server.tls import client_context, server_context

PERSONS = (
    "qualified-qscd",
    "qualified",
    "non-qualified",
    "revoked",
    "expired",
    "key-usage",
    "untrusted",
)


def make_settings(dev_pki: DevPki, database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        database_url=database_url,
        listen_host="127.0.0.1",
        listen_port=0,
        data_dir=dev_pki.directory.parent,
        # Only the notifications are scheduled by default: a test runs the job it tests
        # (tests/integration/test_jobs.py schedules the others on purpose).
        lifecycle=LifecycleSettings(scheduled_jobs=("outbox",)),
        evidence_schema_check=True,  # every evidence a test seals meets the XSD (R6.1)
    )
    return replace(base, **overrides)


@dataclass
class RunningServer:
    url: str
    app: web.Application
    clock: ManualClock
    pki: DevPki

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    def client(self, identity: str | None = None, **kwargs: Any) -> aiohttp.ClientSession:
        """A client presenting ``identity``'s certificate (or none), with a cookie jar."""
        ssl_context: ssl.SSLContext | bool = False
        if self.url.startswith("https"):
            if identity is None:
                ssl_context = client_context(self.pki.root)
            else:
                ssl_context = client_context(
                    self.pki.root,
                    self.pki.directory / f"{identity}.chain.pem",
                    self.pki.key(identity),
                )
        return aiohttp.ClientSession(
            base_url=self.url,
            connector=aiohttp.TCPConnector(ssl=ssl_context, force_close=True),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            **kwargs,
        )


@asynccontextmanager
async def running_server(
    settings: Settings, pki: DevPki, clock: ManualClock | None = None
) -> AsyncIterator[RunningServer]:
    clock = clock or ManualClock()
    app = create_app(settings, clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_context = server_context(settings) if settings.tls else None
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if settings.tls else "http"
    try:
        yield RunningServer(f"{scheme}://127.0.0.1:{port}", app, clock, pki)
    finally:
        await runner.cleanup()


def proxy_header(pki: DevPki, identity: str) -> dict[str, str]:
    """What nginx sends for ``$ssl_client_escaped_cert``: the URL-encoded leaf PEM."""
    return {"X-SSL-Client-Cert": quote(pki.cert(identity).read_text())}


def pem_header(path: Path) -> dict[str, str]:
    return {"X-SSL-Client-Cert": quote(path.read_text())}


SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "api"


def assert_schema(name: str, body: object) -> None:
    """The body matches the published JSON Schema ``schemas/api/<name>.schema.json``."""
    import json

    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, [e.message for e in errors]


@asynccontextmanager
async def audit_head_removed(pool: Any) -> AsyncIterator[None]:
    """The audit chain unable to take a record (its head row gone, migration 0009) for
    the block, and as it was afterwards: what must commit with its audit record commits
    not at all meanwhile (R9.1)."""
    head = await pool.fetchrow("SELECT seq, prev_hash, hash FROM audit_head")
    assert head is not None
    await pool.execute("DELETE FROM audit_head")
    try:
        yield
    finally:
        await pool.execute(
            "INSERT INTO audit_head (seq, prev_hash, hash) VALUES ($1, $2, $3)",
            head["seq"],
            head["prev_hash"],
            head["hash"],
        )


def self_signed(
    common_name: str, serial: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A throwaway self-signed P-256 certificate named ``common_name`` (any text, a NUL
    too), valid from yesterday for 30 days: what a stranger can present or sign with."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .public_key(key.public_key())
        .sign(key, hashes.SHA256())
    )
    return key, cert
