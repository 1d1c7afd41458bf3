"""``vep admin verify-export DIR``: is the successor's archive intact and the provider's (R8.5)?

In this order, stopping at the first problem:

1. ``manifest.json.p7s`` is a detached CAdES signature over the exact bytes of
   ``manifest.json``, intact (signature value, message digest, signature time-stamp) and by
   a certificate that chains to a trust anchor (the configured anchors, the dev root in
   development) — the validation tool of R6.4 (:mod:`server.validate`) decides — and every
   certificate the seal carries verifies under its issuer (the certificate set is outside
   the signature: a changed byte there would otherwise go unnoticed);
2. the signer is the provider's seal certificate itself, as the successor knows it (from the
   trusted list or the provider), and the seal has a signature time-stamp (CAdES-B-T): the
   anchors also issue every subscriber's certificate, so "chains to an anchor" alone let
   anyone with a qualified signature seal an archive of their own making;
3. the manifest is ours (``format``), names only safe relative paths, and lists every file
   an export of its format writes (:data:`REQUIRED`);
4. every file it lists exists with its size and SHA-256 (read in 1 MiB chunks), and the
   directory holds no other file;
5. ``audit.jsonl`` recomputes as an unbroken hash chain (R9.1), so the audit trail handed
   over is checked on its own terms as well.

No database and no network are needed: the successor runs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from asn1crypto import cms, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature

from ..store.audit import AuditEvent, check_chain
from ..validate import validate
from ..validate.cmscheck import signer_der
from .archive import FORMAT, MANIFEST, SEAL
from .tables import TABLES

CHUNK = 1024 * 1024
#: The files every export of each format writes besides the evidence XML: a manifest
#: without one of them describes an archive with records left out. Format 1 (before
#: receipts, registrations and wind-down notices were exported) still verifies as such.
_FILES = frozenset({"evidence.jsonl", "audit.jsonl", *(t.file for t in TABLES)})
REQUIRED = {
    FORMAT: _FILES,
    "vep-export/1": _FILES - {"receipts.jsonl", "registrations.jsonl", "wind_down_notices.jsonl"},
}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    problem: str | None = None
    files: int = 0
    signer: str | None = None
    sealed_at: datetime | None = None
    audit_records: int = 0


def _fail(
    problem: str, signer: str | None = None, sealed_at: datetime | None = None, files: int = 0
) -> VerifyResult:
    return VerifyResult(False, problem, files, signer, sealed_at)


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _safe(relative: object) -> bool:
    if not isinstance(relative, str) or not relative or "\\" in relative:
        return False
    path = PurePosixPath(relative)
    return not path.is_absolute() and ".." not in path.parts and relative == str(path)


#: :func:`check_chain`'s problems, in this tool's words after "record N"
_CHAIN_PROBLEMS = {
    "record missing": " missing",
    "prev_hash does not match": ": prev_hash does not match",
    "record changed": " changed",
}


def _audit_chain(path: Path) -> tuple[int, str | None]:
    read = 0  # lines read: the one that failed, when a record is not readable

    def events(lines: Iterable[bytes]) -> Iterator[AuditEvent]:
        nonlocal read
        for line in lines:
            read += 1
            row = json.loads(line)
            yield AuditEvent(
                seq=row["seq"],
                occurred_at=datetime.fromisoformat(row["occurred_at"]),
                actor=row["actor"],
                action=row["action"],
                outcome=row["outcome"],
                details=row["details"],
                prev_hash=bytes.fromhex(row["prev_hash"]),
                hash=bytes.fromhex(row["hash"]),
            )

    with path.open("rb") as f:
        try:
            report = check_chain(events(f))
        except (ValueError, KeyError, TypeError):
            return read - 1, f"audit.jsonl: record {read} is not readable"
    if report.problem is None:
        return report.records, None
    problem = _CHAIN_PROBLEMS[report.problem]
    return report.records, f"audit.jsonl: record {report.first_bad_seq}{problem}"


def _shown(name: str) -> str:
    """A file name as a problem message may print it: a name with a carriage return or
    an escape sequence in it must not write over the verdict on a terminal."""
    return name if name.isprintable() else repr(name)


def _check_files(directory: Path, listed: dict[str, tuple[int, str]]) -> str | None:
    """The first listed file missing or changed, or an entry the manifest does not list (a
    FIFO, socket or device too: nothing unlisted belongs in a sealed archive)."""
    present = {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_symlink() or not p.is_dir()
    } - {MANIFEST, SEAL}
    for relative in sorted(listed):
        path = directory / relative
        if relative not in present or not path.is_file() or path.is_symlink():
            return f"{_shown(relative)} is missing"
        if _digest(path) != listed[relative]:
            return f"{_shown(relative)} changed (its SHA-256 is not the sealed one)"
    extra = sorted(present - set(listed))
    return f"{_shown(extra[0])} is not in the manifest" if extra else None


def _issued_by(cert: cx509.Certificate, issuer: cx509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _carried_certificates_problem(seal: bytes, anchors: Sequence[x509.Certificate]) -> str | None:
    try:
        signed = cms.ContentInfo.load(seal)["content"]
        carried = [
            cx509.load_der_x509_certificate(choice.chosen.dump())
            for choice in signed["certificates"] or []
        ]
    except (ValueError, TypeError):
        return f"{SEAL} carries a certificate that cannot be read"
    known = carried + [cx509.load_der_x509_certificate(a.dump()) for a in anchors]
    for cert in carried:
        issuers = [c for c in known if c.subject == cert.issuer]
        if not any(_issued_by(cert, issuer) for issuer in issuers):
            subject = cert.subject.rfc4514_string()
            return f"{SEAL} carries a certificate that does not verify: {subject}"
    return None


async def verify_archive(
    directory: Path,
    anchors: Sequence[x509.Certificate],
    seal_certificates: Sequence[x509.Certificate],
) -> VerifyResult:
    """``seal_certificates``: the provider's seal certificate(s) the successor was given;
    the manifest must be sealed by one of them."""
    manifest_path, seal_path = directory / MANIFEST, directory / SEAL
    for needed in (manifest_path, seal_path):
        if not needed.is_file():
            return _fail(f"{needed.name} is missing")
    manifest_bytes, seal_bytes = manifest_path.read_bytes(), seal_path.read_bytes()
    report = await validate(seal_bytes, manifest_bytes, anchors)
    if report.input_kind != "cades" or report.properties.get("detached") is not True:
        return _fail(f"{SEAL} is not a detached CAdES signature")
    if len(report.signatures) != 1:
        return _fail(f"{SEAL} must hold exactly one signature")
    signature = report.signatures[0]
    if not report.intact:
        issues = [
            *report.errors,
            *signature.errors,
            *(e for t in signature.timestamps for e in t.errors),
        ]
        why = issues[0].message if issues else "not intact"
        return _fail(f"the seal over {MANIFEST} does not verify: {why}")
    if signature.trusted is not True:
        return _fail(f"the seal's certificate is not trusted: {signature.trust_reason}")
    carried = _carried_certificates_problem(seal_bytes, anchors)
    if carried is not None:
        return _fail(carried)
    stamped = [t.time for t in signature.timestamps if t.kind == "signature" and t.intact]
    signer, sealed_at = signature.signer_subject, (stamped[0] if stamped else None)
    if signer_der(seal_bytes) not in {bytes(c.dump()) for c in seal_certificates}:
        return _fail(f"the seal is not the provider's: it was made by {signer!r}", signer)
    if sealed_at is None:
        return _fail("the seal has no signature time-stamp (CAdES-B-T)", signer)
    try:
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
        required = REQUIRED.get(str(manifest.get("format")))
        if required is None or not isinstance(files, list):
            raise ValueError
        listed = {str(f["path"]): (int(f["size"]), str(f["sha256"])) for f in files}
    except (ValueError, KeyError, TypeError):
        return _fail(f"{MANIFEST} is not a {FORMAT} manifest", signer, sealed_at)
    if len(listed) != len(files):
        return _fail(f"{MANIFEST} lists a file twice", signer, sealed_at)
    for relative in listed:
        if not _safe(relative) or relative in (MANIFEST, SEAL):
            return _fail(f"{MANIFEST} names an unsafe path: {relative!r}", signer, sealed_at)
    if left_out := sorted(required - set(listed)):
        return _fail(f"{MANIFEST} does not list {left_out[0]}", signer, sealed_at)
    problem = await asyncio.to_thread(_check_files, directory, listed)
    if problem is not None:
        return _fail(problem, signer, sealed_at)
    records = 0
    if "audit.jsonl" in listed:
        records, problem = await asyncio.to_thread(_audit_chain, directory / "audit.jsonl")
        if problem is not None:
            return _fail(problem, signer, sealed_at, len(listed))
    return VerifyResult(True, None, len(listed), signer, sealed_at, records)
