"""``vep admin …``: operator actions, each audited with the operator's name (R2.3, R9.1),
and the provider's wind-down (R8.5): ``wind-down announce|confirm|status``, ``export``,
``verify-export``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import aiohttp

from .cli_services import cli_services
from .clock import SystemClock
from .content.keys import MasterKeyError
from .errors import Conflict, DomainError
from .export.archive import ExportError
from .services.lifecycle import parse_until
from .services.operator import OperatorService
from .services.rekey import RekeyReport
from .services.wind_down import (
    CEASED_FOR_OPERATORS,
    CONFIRMATIONS_NEEDED,
    WindDownGate,
    access_until,
    formal_until,
    phase_at,
)
from .settings import Settings, SettingsError
from .store.audit import AuditStore
from .store.billing import Invoice
from .store.db import create_pool
from .store.mailboxes import MailboxStore
from .store.wind_down import WindDown, WindDownStore


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = subparsers.add_parser("admin", help="operator actions (audited)")
    actions = admin.add_subparsers(dest="action", required=True)
    received = actions.add_parser(
        "contract-received", help="R2.3: the signed paper contract arrived; activate"
    )
    received.add_argument("address")
    received.add_argument("--operator", required=True, help="your name, for the audit trail")
    public = actions.add_parser("public-body", help="entitle a mailbox to formal service")
    public.add_argument("address")
    public.add_argument("value", choices=["on", "off"])
    public.add_argument("--operator", required=True, help="your name, for the audit trail")
    readonly = actions.add_parser(
        "readonly-access", help="R8.4: read-only access to a terminated mailbox"
    )
    readonly.add_argument("grant", choices=["grant"])
    readonly.add_argument("address")
    readonly.add_argument(
        "--until", required=True, help="a date (end of day, UTC) or an ISO time; ≤ 3 months"
    )
    readonly.add_argument("--operator", required=True, help="your name, for the audit trail")
    payment = actions.add_parser("payment", help="R8.2: record a payment received")
    payment.add_argument("record", choices=["record"])
    payment.add_argument("invoice", help="the invoice number, e.g. 2026-11-000042")
    payment.add_argument("amount", help="in euros, e.g. 5.00")
    payment.add_argument("--reference", help="the bank's reference (a repeat is refused)")
    payment.add_argument("--operator", required=True, help="your name, for the audit trail")
    wind = actions.add_parser("wind-down", help="R8.5: cease the service (two operators)")
    steps = wind.add_subparsers(dest="step", required=True)
    announce = steps.add_parser("announce", help="record the announcement the operators sign")
    announce.add_argument("--operator", required=True, help="your name, for the audit trail")
    announce.add_argument(
        "--document-out", help="where to write the document to sign (default ./wind-down-ID.txt)"
    )
    confirm = steps.add_parser(
        "confirm", help="confirm with a detached CAdES (.p7s) over the document"
    )
    confirm.add_argument("wind_down_id")
    confirm.add_argument("--signature", required=True, help="vep sign-contract --cades output")
    status = steps.add_parser("status", help="the wind-down, its confirmations and its days")
    status.add_argument("--document-out", help="write the announcement document here too")
    rekey = actions.add_parser(
        "content-rekey",
        help="R5.5: wrap every delivery's key under the current master key (a rotation)",
    )
    rekey.add_argument("--operator", required=True, help="your name, for the audit trail")
    export = actions.add_parser(
        "export", help="R8.5: the signed archive for the successor provider"
    )
    export.add_argument("--to", required=True, help="a new or empty directory")
    export.add_argument("--operator", required=True, help="your name, for the audit trail")
    verify = actions.add_parser("verify-export", help="R8.5: check an exported archive")
    verify.add_argument("directory")
    verify.add_argument(
        "--anchors", action="append", default=[], help="more trust anchors (PEM), repeatable"
    )
    verify.add_argument(
        "--seal-cert",
        action="append",
        default=[],
        help="the provider's seal certificate (PEM/DER) the archive must be sealed by, "
        "repeatable; default: this installation's configured seal certificate",
    )


async def _refuse_when_ceased(gate: WindDownGate) -> None:
    """R8.5: from day 45 the service is read-only, for operators too."""
    await gate.refuse_if_ceased(SystemClock().now(), CEASED_FOR_OPERATORS)


def _describe(wind: WindDown) -> list[str]:
    lines = [
        f"wind-down {wind.wind_down_id}",
        f"  announced {wind.announced_at.isoformat()} by {wind.announced_by}",
    ]
    for c in wind.confirmations:
        lines.append(
            f"  confirmed {c.confirmed_at.isoformat()} by {c.person_id} "
            f"(certificate {c.cert_fingerprint[:16]}…)"
        )
    if wind.effective_at is None:
        lines.append(
            f"  pending: {len(wind.confirmations)} of {CONFIRMATIONS_NEEDED} operators confirmed"
        )
        return lines
    now = SystemClock().now()
    day = (now - wind.effective_at).days
    lines += [
        f"  effective {wind.effective_at.isoformat()} "
        f"(day {day}, {phase_at(wind.effective_at, now)})",
        f"  return-receipt deliveries refused from {formal_until(wind.effective_at).isoformat()}",
        f"  subscribers' access ends {access_until(wind.effective_at).isoformat()}",
        f"  subscribers told: {wind.mailboxes_notified} mailbox(es); "
        f"ministry told: {'yes' if wind.ministry_notified else 'not yet'}",
        f"  mailboxes closed: {wind.closed_at.isoformat() if wind.closed_at else 'not yet'}",
    ]
    return lines


def _write(path: Path, data: bytes) -> None:
    """A small file written from the CLI's event loop (nothing else runs there; ASYNC240)."""
    path.write_bytes(data)


def _wind_down(settings: Settings, args: argparse.Namespace) -> int:
    signature = Path(args.signature).read_bytes() if args.step == "confirm" else None

    async def act() -> int:
        async with cli_services(settings, SystemClock()) as services:
            service = services.wind_down
            if args.step == "announce":
                wind = await service.announce(args.operator)
                out = Path(args.document_out or f"wind-down-{wind.wind_down_id}.txt")
                _write(out, wind.document)
                print(f"vep: wind-down {wind.wind_down_id} announced; pending two operators")
                print(f"vep: each operator signs {out} with their own qualified certificate:")
                print(f"  vep sign-contract --p12 OPERATOR.p12 --cades {out} {out}.p7s")
                print(f"  vep admin wind-down confirm {wind.wind_down_id} --signature {out}.p7s")
                return 0
            if args.step == "confirm":
                wind, count = await service.confirm(args.wind_down_id, signature or b"")
                who = wind.confirmations[-1].person_id if wind.confirmations else "?"
                if wind.effective_at is None:
                    print(
                        f"vep: confirmation {count} of {CONFIRMATIONS_NEEDED} recorded ({who}); "
                        "another operator must confirm"
                    )
                else:
                    print(f"vep: wind-down EFFECTIVE at {wind.effective_at.isoformat()}")
                    print("\n".join(_describe(wind)[1:]))
                return 0
            wind_or_none = await service.status()
            if wind_or_none is None:
                print("vep: no wind-down announced")
                return 0
            if args.document_out:
                _write(Path(args.document_out), wind_or_none.document)
            print("\n".join(_describe(wind_or_none)))
            return 0

    return asyncio.run(act())


def _progress(label: str, done: int, total: int) -> None:
    print(f"vep: export {label} {done}/{total}", file=sys.stderr, flush=True)


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from .evidence.factory import timestamper_from_settings
    from .evidence.signer import load_signer
    from .export import ProviderSeal, export_archive

    directory = Path(args.to).resolve()

    async def act() -> int:
        clock = SystemClock()
        operator = f"operator:{args.operator}"
        pool = await create_pool(settings.database_url, max_size=2)
        try:
            timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout_seconds)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                seal = ProviderSeal(
                    load_signer(settings), timestamper_from_settings(settings, http)
                )
                audit = AuditStore(pool)
                started = clock.now()
                if await WindDownStore(pool, audit).effective_at() is None:
                    details = {"to": str(directory), "reason": "wind_down_not_effective"}
                    await audit.append(started, operator, "export.start", "refused", details)
                    raise Conflict(
                        "The evidence is handed over to a successor only in a wind-down "
                        "two operators confirmed (four-eyes, R8.5).",
                        "wind_down_not_effective",
                    )

                async def before() -> None:  # in the archive's own audit chain
                    details = {"to": str(directory)}
                    await audit.append(started, operator, "export.start", "success", details)

                try:
                    result = await export_archive(
                        pool,
                        directory,
                        seal,
                        _progress,
                        created_at=started,
                        operator=args.operator,
                        before_snapshot=before,
                    )
                except Exception as exc:
                    # R9.1: the attempt read the records, so it is on record how it ended
                    details = {"to": str(directory), "error": type(exc).__name__}
                    with contextlib.suppress(Exception):  # the database may be the failure
                        await audit.append(
                            clock.now(), operator, "export.failed", "failure", details
                        )
                    if isinstance(exc, DomainError | ExportError):
                        raise
                    # the class only: a message may carry a URL or a path with secrets
                    raise ExportError(
                        f"the export failed ({type(exc).__name__}); nothing was kept"
                    ) from None
                await audit.append(
                    clock.now(),
                    operator,
                    "export.written",
                    "success",
                    {
                        "to": str(directory),
                        "files": result.files,
                        "records": result.records,
                        "manifest_sha256": result.manifest_sha256,
                    },
                )
        finally:
            await pool.close()
        print(
            f"vep: exported {result.files} files to {directory}; manifest sealed "
            f"(SHA-256 {result.manifest_sha256})"
        )
        return 0

    return asyncio.run(act())


def verify_export(args: argparse.Namespace) -> int:
    """``vep admin verify-export DIR``: 0 when intact, 1 naming the first problem."""
    from .export import verify_archive
    from .validate.anchors import (
        environment_anchor_paths,
        environment_seal_certificate,
        load_anchors,
        seal_certificates,
    )

    paths = [*environment_anchor_paths(), *(Path(a) for a in args.anchors)]
    configured = environment_seal_certificate()
    seal_paths = [Path(p) for p in args.seal_cert] or ([configured] if configured else [])
    try:
        seals = seal_certificates(seal_paths)
    except ValueError:
        print("vep: --seal-cert: not a readable certificate file", file=sys.stderr)
        return 2
    if not seals:
        print("vep: name the provider's seal certificate with --seal-cert", file=sys.stderr)
        return 2
    result = asyncio.run(verify_archive(Path(args.directory), load_anchors(paths), seals))
    if not result.ok:
        print(f"vep: export NOT intact: {result.problem}", file=sys.stderr)
        return 1
    sealed = result.sealed_at.isoformat() if result.sealed_at else "no time-stamp"
    print(
        f"vep: export intact: {result.files} files, sealed by {result.signer} ({sealed}); "
        f"audit chain intact ({result.audit_records} records)"
    )
    return 0


async def _grant_readonly(settings: Settings, args: argparse.Namespace) -> datetime:
    async with cli_services(settings, SystemClock()) as services:
        await _refuse_when_ceased(services.wind_down.gate)
        return await services.lifecycle.grant_readonly(
            args.address, parse_until(args.until), args.operator
        )


async def _record_payment(settings: Settings, args: argparse.Namespace) -> Invoice:
    async with cli_services(settings, SystemClock()) as services:
        await _refuse_when_ceased(services.wind_down.gate)
        return await services.billing.record_by_operator(
            args.invoice, args.amount, args.operator, args.reference
        )


def _content_rekey(settings: Settings, args: argparse.Namespace) -> int:
    async def act() -> RekeyReport:
        async with cli_services(settings, SystemClock()) as services:
            return await services.content_rekey.run(args.operator)

    report = asyncio.run(act())
    print(
        f"vep: {report.seen} deliveries with content: {report.rewrapped} key(s) wrapped under "
        f"master key version {settings.content_key_version}, "
        f"{report.messages_sealed} message(s) sealed"
    )
    for line in report.unreadable:
        print(f"vep: left under another master key: {line}", file=sys.stderr)
    if report.unreadable:
        print("vep: keep the retired keys until these are resolved", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    async def with_operator(action: Callable[[OperatorService], Awaitable[str]]) -> str:
        pool = await create_pool(settings.database_url, max_size=2)
        try:
            audit = AuditStore(pool)
            wind_down = WindDownStore(pool, audit)
            await _refuse_when_ceased(
                WindDownGate(wind_down, settings.lifecycle.wind_down_check_seconds)
            )
            return await action(OperatorService(SystemClock(), MailboxStore(pool, audit)))
        finally:
            await pool.close()

    try:
        if args.action == "wind-down":
            return _wind_down(settings, args)
        if args.action == "export":
            return _export(settings, args)
        if args.action == "content-rekey":
            return _content_rekey(settings, args)
        if args.action == "payment":
            invoice = asyncio.run(_record_payment(settings, args))
            state = "paid" if invoice.paid_at else f"{invoice.outstanding_cents / 100:.2f} EUR open"
            print(f"vep: payment recorded on {invoice.number} ({state})")
        elif args.action == "readonly-access":
            until = asyncio.run(_grant_readonly(settings, args))
            print(f"vep: {args.address} is read-only until {until.isoformat()}")
        elif args.action == "contract-received":
            state = asyncio.run(
                with_operator(lambda op: op.contract_received(args.address, args.operator))
            )
            print(f"vep: {args.address} is now {state}")
        else:

            async def set_flag(op: OperatorService) -> str:
                await op.set_public_body(args.address, args.value == "on", args.operator)
                return str(args.value)

            asyncio.run(with_operator(set_flag))
            print(f"vep: {args.address} public body {args.value}")
    except (OSError, ExportError, SettingsError, MasterKeyError) as exc:
        print(f"vep: {exc}", file=sys.stderr)
        return 1
    except DomainError as exc:
        fields = getattr(exc, "errors", None)
        print(f"vep: {exc.detail} ({exc.reason}){f' {fields}' if fields else ''}", file=sys.stderr)
        return 1
    return 0
