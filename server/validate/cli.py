"""``vep verify FILE [--content FILE] [--anchor PEM ...] [--json]`` (R6.4).

Exit status: 0 when every signature and timestamp in the input is intact (trust and
qualification are reported, not part of the status), 1 when anything is not intact or
the input is malformed, hostile or of no supported format, 2 on a usage error (a file
that cannot be read, an anchor that is not a certificate).

Trust anchors are those the service is configured with (:mod:`.anchors`: the dev PKI root
when present, ``VEP_TRUST_ANCHORS``) plus every ``--anchor``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from asn1crypto import x509

from ..trust.validation import load_certificates
from .anchors import environment_anchor_paths, load_anchors
from .detect import validate
from .report import Issue, SignatureReport, TimestampReport, Trust, ValidationReport

_KINDS = {
    "xades": "XML signature (XAdES / XMLDSig)",
    "cades": "CMS signature (CAdES)",
    "pades": "signed PDF (PAdES)",
    "timestamp": "RFC 3161 timestamp",
    "unknown": "unsupported format",
}


def add_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="validate a signed document, a piece of evidence or a timestamp (R6.4)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="the signed PDF, XML, .p7m/.p7s, or .tst/.tsr")
    parser.add_argument("--content", help="the detached content a signature or a timestamp covers")
    parser.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="PEM",
        help="an additional trust anchor (PEM/DER file or directory); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _anchors(extra: list[str]) -> list[x509.Certificate]:
    anchors = list(load_anchors(environment_anchor_paths()))
    for name in extra:
        path = Path(name)
        if not path.exists():
            raise OSError(f"{name}: no such file")
        anchors.extend(load_certificates([path]))
    return anchors


def run(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
        content_name = getattr(args, "content", None)
        content = Path(content_name).read_bytes() if content_name else None
        anchors = _anchors(list(getattr(args, "anchor", None) or []))
    except OSError as exc:
        print(f"vep verify: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # an anchor file that holds no certificate
        print(f"vep verify: not a certificate: {exc}", file=sys.stderr)
        return 2
    # pyHanko logs the changes it cannot explain as a warning with a traceback; the report
    # says what they mean for the verdict, and a terminal needs nothing else
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    report = asyncio.run(validate(data, content, anchors))
    if getattr(args, "json", False):
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print(render(report, args.file))
    return 0 if report.intact else 1


def render(report: ValidationReport, name: str) -> str:
    """The report for people."""
    count = len(report.signatures)
    verdict = "INTACT" if report.intact else "NOT INTACT"
    lines = [
        f"{name}: {_KINDS[report.input_kind]}, {count} signature(s), "
        f"{len(report.timestamps)} timestamp(s): {verdict}",
        f"  checked at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC; sha256 {report.input_sha256}"
        if report.checked_at
        else f"  sha256 {report.input_sha256}",
        "  trust anchors: " + ("; ".join(report.anchors) if report.anchors else "none"),
    ]
    lines.extend(_issues(report.errors, report.warnings, "  "))
    for signature in report.signatures:
        lines.extend(_signature(signature))
    for stamp in report.timestamps:
        lines.extend(_timestamp(stamp, "  "))
    return "\n".join(lines)


def _signature(s: SignatureReport) -> list[str]:
    lines = [
        "",
        f"  {s.role} {s.id or ''}: {'intact' if s.intact else 'NOT INTACT'}",
        f"    signer:  {s.signer_subject or 'unknown'}",
        f"    issuer:  {s.signer_issuer or 'unknown'} (serial {s.signer_serial or '?'})",
        f"    claimed signing time: {s.signing_time.isoformat() if s.signing_time else 'none'}",
        f"    algorithm: {s.signature_algorithm or 'unknown'}",
        f"    qualified (QCStatements): {_yes(s.qualified)}; QSCD: {_yes(s.qscd)}"
        + (f"; QcType: {', '.join(s.qc_types)}" if s.qc_types else ""),
        *_trust(s.trust, "    "),
    ]
    lines.extend(f"    covers: {line}" for line in s.signed_data)
    for stamp in s.timestamps:
        lines.extend(_timestamp(stamp, "    "))
    lines.extend(_issues(s.errors, s.warnings, "    "))
    return lines


def _timestamp(t: TimestampReport, indent: str) -> list[str]:
    imprint = {
        True: "imprint matches",
        False: "IMPRINT DOES NOT MATCH",
        None: "imprint not checked",
    }
    # found in review: "intact" beside an archive or refs token whose imprint is not
    # recomputed read as if it dated this signature; it vouches only for its own bytes
    verdict = "intact" if t.intact else "NOT INTACT"
    if t.intact and t.imprint_matches is None:
        verdict = "token intact, covers data not checked here"
    lines = [
        f"{indent}timestamp ({t.kind}): {verdict}, "
        f"{t.time.isoformat() if t.time else 'no time'}, {imprint[t.imprint_matches]}"
        + (", qualified" if t.qualified else ""),
        f"{indent}  TSA: {t.tsa_subject or t.tsa_name or 'unknown'}",
        *_trust(t.trust, indent + "  "),
    ]
    lines.extend(_issues(t.errors, t.warnings, indent + "  "))
    return lines


def _trust(trust: Trust, indent: str) -> list[str]:
    if trust.trusted is None:
        return [f"{indent}trust: not assessed ({trust.reason})"]
    when = f" at {trust.moment.isoformat()} ({trust.moment_source})" if trust.moment else ""
    head = f"trusted, anchor {trust.anchor}" if trust.trusted else str(trust.reason)
    lines = [f"{indent}trust: {head}{when}"]
    if trust.chain:
        lines.append(f"{indent}chain: " + " → ".join(trust.chain))
    return lines


def _issues(errors: tuple[Issue, ...], warnings: tuple[Issue, ...], indent: str) -> list[str]:
    return [f"{indent}error {i.code}: {i.message}" for i in errors] + [
        f"{indent}warning {i.code}: {i.message}" for i in warnings
    ]


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def main(argv: list[str] | None = None) -> int:
    """``python -m server.validate.cli FILE ...`` until ``vep verify`` is wired."""
    parser = argparse.ArgumentParser(prog="vep")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["verify", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    raise SystemExit(main())
