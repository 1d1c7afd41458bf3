"""The ``vep`` command: serve | migrate | check-config | verify-audit | admin | dev-pki |
sign-contract | run-job | jobs | verify."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .settings import Settings, SettingsError, from_environment


def _settings() -> Settings:
    try:
        return from_environment()
    except SettingsError as exc:
        print(f"vep: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(_settings())


def cmd_migrate(args: argparse.Namespace) -> int:
    from .store import migrate
    from .store.db import create_pool

    settings = _settings()

    async def run() -> list[str]:
        pool = await create_pool(settings.database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                return await migrate.apply(conn)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    print("vep: applied " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings()
    print(
        f"vep: configuration ok (listen {settings.listen_host}:{settings.listen_port}, "
        f"tls {'on' if settings.tls else 'off'}, revocation {settings.revocation}, "
        f"{len(settings.anchor_paths)} anchor file(s))"
    )
    return 0


def cmd_verify_audit(args: argparse.Namespace) -> int:
    from .services.audit_seal import verify_seals
    from .store.audit import AuditStore
    from .store.audit_seals import AuditSealStore
    from .store.db import create_pool
    from .validate.anchors import load_anchors, seal_certificates

    settings = _settings()
    # the seals' own certificates (a chain file's first one is the seal): the configured
    # one and any earlier one named, since a renewed seal certificate did not make the
    # older seals anyone else's (review)
    configured = settings.effective_seal_cert
    named = [Path(p) for p in args.seal_cert] + ([configured] if configured.is_file() else [])
    try:
        pins = seal_certificates(named)
    except ValueError:
        print("vep: --seal-cert: not a readable certificate file", file=sys.stderr)
        return 2

    async def run() -> int:
        pool = await create_pool(settings.database_url, max_size=1)
        try:
            report = await AuditStore(pool).verify()
            seals = await verify_seals(
                AuditSealStore(pool), load_anchors(settings.anchor_paths), pins
            )
        finally:
            await pool.close()
        if not report.ok:
            print(
                f"vep: audit chain BROKEN at record {report.first_bad_seq}: {report.problem} "
                f"({report.records} records verified before it)",
                file=sys.stderr,
            )
            return 1
        if not seals.ok:
            print(f"vep: audit chain BROKEN: {seals.problem}", file=sys.stderr)
            return 1
        sealed = (
            f"; {seals.seals} seal(s), the last over record {seals.last_seq}"
            if seals.last_seq is not None
            else "; not sealed yet"
        )
        print(f"vep: audit chain intact ({report.records} records{sealed})")
        return 0

    return asyncio.run(run())


def cmd_dev_pki(args: argparse.Namespace) -> int:
    from .devpki import generate

    directory = Path(args.dir)
    url_prefix = f"http://127.0.0.1:{args.port}"
    if args.action == "init":
        existing = generate.load(directory)
        if (
            existing is not None
            and existing.url_prefix == url_prefix
            and existing.current
            and not args.force
        ):
            print(f"vep: development PKI already in {directory}")
            return 0
        pki = generate.generate(directory, url_prefix)
        print(
            f"vep: development PKI written to {pki.directory} "
            f"(persons as .pem/.key/.p12, PKCS#12 password 'vep'; service {url_prefix})"
        )
        if existing is not None:
            # certomancer numbers certificates in order: one whose content changed (or a
            # person added before it) may now carry a serial an old database has seen
            # with other content, and is refused there (serial_reused, RFC 5280 §4.1.2.2)
            print(
                "vep: the certificates were re-issued; one whose content changed under a "
                "serial number a database has seen is refused there (serial_reused): "
                "start from a fresh database (make distclean)",
                file=sys.stderr,
            )
        return 0
    from aiohttp import web

    from .devpki.service import build_app

    found = generate.load(directory)
    if found is None:
        print(f"vep: no development PKI in {directory}; run 'vep dev-pki init'", file=sys.stderr)
        return 2
    pki = found
    port = int(pki.url_prefix.rsplit(":", 1)[1])
    web.run_app(
        build_app(pki),
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda _: print(f"vep: dev PKI OCSP/CRL/TSA at {pki.url_prefix}", flush=True),
    )
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    from . import cli_admin

    if args.action == "verify-export":  # the successor runs it: no database needed
        return cli_admin.verify_export(args)
    return cli_admin.run(args, _settings())


def cmd_run_job(args: argparse.Namespace) -> int:
    from . import cli_jobs

    return cli_jobs.run(args, _settings())


def cmd_jobs(args: argparse.Namespace) -> int:
    from . import cli_jobs

    return cli_jobs.list_jobs(args, _settings())


def cmd_verify(args: argparse.Namespace) -> int:
    from .validate import cli as validate_cli

    return validate_cli.run(args)


def cmd_sign_contract(args: argparse.Namespace) -> int:
    from .tools import sign

    return sign.run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve HTTPS with client-certificate authentication")
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("check-config", help="load the settings and report the first problem")
    audit = sub.add_parser("verify-audit", help="recompute the audit hash chain (R9.1)")
    audit.add_argument(
        "--seal-cert",
        action="append",
        default=[],
        help="a seal certificate (PEM/DER) the audit seals may be made by, repeatable (the "
        "provider's earlier ones after a renewal); default: the configured seal certificate",
    )
    dev = sub.add_parser("dev-pki", help="development PKI: generate it, or serve OCSP/CRL/TSA")
    dev.add_argument("action", choices=["init", "serve"])
    dev.add_argument("--dir", default=".data/pki")
    dev.add_argument("--port", type=int, default=9180)
    dev.add_argument("--force", action="store_true", help="re-issue even when present")
    from . import cli_admin, cli_jobs
    from .tools import sign

    cli_admin.add_cli(sub)
    cli_jobs.add_cli(sub)
    from .validate import cli as validate_cli

    validate_cli.add_cli(sub)
    sign.add_cli(sub)
    args = parser.parse_args(argv)
    handlers = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "check-config": cmd_check_config,
        "verify-audit": cmd_verify_audit,
        "dev-pki": cmd_dev_pki,
        "admin": cmd_admin,
        "sign-contract": cmd_sign_contract,
        "run-job": cmd_run_job,
        "jobs": cmd_jobs,
        "verify": cmd_verify,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
