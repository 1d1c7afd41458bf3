"""The local OCSP / CRL / RFC 3161 TSA service of the development PKI.

certomancer's aiohttp animator serves the revocation data and time stamps for real
(signed OCSP responses, signed CRLs, RFC 3161 tokens). On top of it one development-only
route, ``POST /_vep/revoke/{arch}/{cert}``, revokes a certificate *while the service runs*,
so that R1.3 ("a certificate revoked meanwhile ends the session") is tested against a live
responder; revocations persist in ``revocations.json`` across restarts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web
from asn1crypto import crl
from certomancer.integrations.aiohttp_animator import build_animator_app
from certomancer.registry import ArchLabel, CertLabel, PKIArchitecture
from certomancer.registry.issued.general import RevocationStatus

from .generate import DevPki, load_config

REVOCATIONS = "revocations.json"


def _revocation_time(now: datetime) -> datetime:
    """Back-date to the start of the current CRL period so CRL and OCSP agree at once.

    certomancer publishes CRLs on a simulated schedule (P1D here); a revocation dated
    after the current CRL's thisUpdate would show in OCSP but not in the CRL until the
    next day, and the CRL fallback would then disagree with OCSP.
    """
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _apply(archs: dict[ArchLabel, PKIArchitecture], entries: dict[str, str]) -> None:
    """Mark certificates revoked in certomancer's registry (its specs are frozen: replace)."""
    for key, since in entries.items():
        arch_label, cert_label = key.split("/", 1)
        arch = archs[ArchLabel(arch_label)]
        spec = arch.get_cert_spec(CertLabel(cert_label))
        revo = RevocationStatus(
            revoked_since=datetime.fromisoformat(since),
            reason=crl.CRLReason("key_compromise"),
        )
        arch._cert_specs[CertLabel(cert_label)] = replace(spec, revocation=revo)


def build_app(pki: DevPki) -> web.Application:
    cfg = load_config(pki.config_path, pki.directory, pki.url_prefix)
    archs = dict(cfg.pki_archs)
    store = pki.directory / REVOCATIONS
    entries: dict[str, str] = (
        json.loads(store.read_text(encoding="utf-8")) if store.exists() else {}
    )
    _apply(archs, entries)

    app = build_animator_app(archs, with_web_ui=False, allow_time_override=False)

    async def revoke(request: web.Request) -> web.Response:
        arch_label = request.match_info["arch"]
        cert_label = request.match_info["cert"]
        if ArchLabel(arch_label) not in archs:
            raise web.HTTPNotFound()
        now = datetime.now(UTC)
        since = _revocation_time(now)
        entries[f"{arch_label}/{cert_label}"] = since.isoformat()
        _apply(archs, {f"{arch_label}/{cert_label}": since.isoformat()})
        store.write_text(json.dumps(entries, indent=2), encoding="utf-8")
        return web.json_response(
            {"revoked": f"{arch_label}/{cert_label}", "since": since.isoformat()}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_post("/_vep/revoke/{arch}/{cert}", revoke)
    app.router.add_get("/_vep/healthz", healthz)
    return app
