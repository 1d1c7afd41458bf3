"""``vep admin …``: operator actions, each audited with the operator's name (R2.3, R9.1)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime

from .cli_services import cli_services
from .clock import SystemClock
from .errors import DomainError
from .services.lifecycle import parse_until
from .services.operator import OperatorService
from .settings import Settings
from .store.audit import AuditStore
from .store.billing import Invoice
from .store.db import create_pool
from .store.mailboxes import MailboxStore


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


async def _grant_readonly(settings: Settings, args: argparse.Namespace) -> datetime:
    async with cli_services(settings, SystemClock()) as services:
        return await services.lifecycle.grant_readonly(
            args.address, parse_until(args.until), args.operator
        )


async def _record_payment(settings: Settings, args: argparse.Namespace) -> Invoice:
    async with cli_services(settings, SystemClock()) as services:
        return await services.billing.record_by_operator(
            args.invoice, args.amount, args.operator, args.reference
        )


def run(args: argparse.Namespace, settings: Settings) -> int:
    async def with_operator(action: Callable[[OperatorService], Awaitable[str]]) -> str:
        pool = await create_pool(settings.database_url, max_size=2)
        try:
            store = MailboxStore(pool, AuditStore(pool))
            return await action(OperatorService(SystemClock(), store))
        finally:
            await pool.close()

    try:
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
    except DomainError as exc:
        fields = getattr(exc, "errors", None)
        print(f"vep: {exc.detail} ({exc.reason}){f' {fields}' if fields else ''}", file=sys.stderr)
        return 1
    return 0
