"""``vep admin export --to DIR``: everything the successor provider needs, sealed (R8.5).

The archive is a directory:

- ``evidence/<delivery id>/<evidence id>.xml`` — every piece of evidence exactly as it was
  sealed (XAdES-B-T, byte for byte: ``xmlsec1`` and ``openssl ts`` verify them there), and
  ``evidence.jsonl`` indexing them;
- JSON Lines, one record a line, binary columns base64 in a ``<name>_base64`` member:
  ``deliveries.jsonl`` (the records with their parts' names, types, sizes and SHA-256, and
  each recipient's state and dates — **no content**: neither the files, the message text nor
  the wrapped content keys; the successor takes over records and evidence),
  ``subscribers.jsonl``, ``contracts.jsonl`` (the signed subscription contracts),
  ``mailboxes.jsonl`` (no admin password hashes or lock counters),
  ``mailbox_state_changes.jsonl``, ``memberships.jsonl`` (with the enrolled certificates'
  fingerprints), ``notification_addresses.jsonl`` (confirmed ones), ``persons.jsonl``,
  ``certificates.jsonl`` (DER), ``closure_requests.jsonl``, ``wind_down.jsonl`` (the
  announcement with its signed confirmations), ``audit.jsonl`` (the whole hash chain);
- ``manifest.json``: every file above with its size and SHA-256, and ``manifest.json.p7s``:
  a detached CAdES signature over the manifest's exact bytes by the provider's seal key
  (the evidence seal, R6.5) with an RFC 3161 signature time-stamp (CAdES-B-T).
  ``openssl cms -verify -binary -content manifest.json -inform DER -in manifest.json.p7s
  -CAfile root.pem -purpose any`` checks it.

Everything is read in one REPEATABLE READ read-only transaction (one consistent snapshot)
through server-side cursors and written as it streams, so memory stays flat however large
the service; each file is hashed while it is written. Progress goes to ``progress``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import asyncpg
from asn1crypto import cms
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps.api import TimeStamper as PyHankoTimeStamper

from ..evidence.hsm import Pkcs11Signer
from ..evidence.signer import FileKeySigner
from ..evidence.timestamper import TimeStamper
from ..receipts.sign import pdf_signer_for
from .tables import TABLES, Table

if TYPE_CHECKING:
    from ..store.db import Connection

#: 2: receipts, registrations and wind-down notices were added (a /1 archive lacks them).
FORMAT = "vep-export/2"
MANIFEST = "manifest.json"
SEAL = "manifest.json.p7s"
#: Progress is reported every this many records (and at each table's end).
PROGRESS_EVERY = 500
PREFETCH = 200

Progress = Callable[[str, int, int], None]


class ManifestSealer(Protocol):
    async def seal(self, data: IO[bytes]) -> bytes:
        """A detached CMS (DER) over everything ``data`` holds, read as a stream."""
        ...


class _TokenStamper(PyHankoTimeStamper):
    """pyHanko's time-stamper interface over our own client (HTTP TSA or the local dev TSA),
    whose tokens are already checked per RFC 3161 §2.4.2."""

    def __init__(self, inner: TimeStamper) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._inner = inner

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        stamp = await self._inner.stamp(message_digest, md_algorithm)
        return cms.ContentInfo.load(stamp.der)


class ProviderSeal:
    """The provider's seal over a manifest: CAdES-B-T, detached, SHA-256."""

    def __init__(
        self, signer: FileKeySigner | Pkcs11Signer, timestamper: TimeStamper | None
    ) -> None:
        self._signer = pdf_signer_for(signer)
        self._stamper = _TokenStamper(timestamper) if timestamper is not None else None
        self.certificate = signer.certificates[0]

    async def seal(self, data: IO[bytes]) -> bytes:
        signed = await self._signer.async_sign_general_data(
            data,
            "sha256",
            detached=True,
            use_cades=True,
            timestamper=self._stamper,
            signed_attr_settings=PdfCMSSignedAttributes(signing_time=datetime.now(UTC)),
        )
        return bytes(signed.dump())


@dataclass
class ExportResult:
    directory: Path
    records: dict[str, int] = field(default_factory=dict)
    files: int = 0
    manifest_sha256: str = ""


class ExportError(Exception):
    pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def record(row: asyncpg.Record, drop: Iterable[str] = ()) -> dict[str, Any]:
    """A row as a JSON object; ``bytea`` becomes ``<name>_base64``."""
    skip = set(drop)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in skip:
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            out[f"{key}_base64"] = base64.b64encode(bytes(value)).decode("ascii")
        else:
            out[key] = _jsonable(value)
    return out


class _HashingFile:
    """A file written once, hashed as it is written."""

    def __init__(self, root: Path, relative: str) -> None:
        self.relative = relative
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("xb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def close(self) -> dict[str, Any]:
        self._file.close()
        return {"path": self.relative, "size": self.size, "sha256": self._hash.hexdigest()}


class _Entries:
    """The manifest's file entries, spooled to an anonymous temporary file (one JSON line
    each) so that a million evidence files do not become a million dicts in memory."""

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self.count = 0

    def add(self, entry: dict[str, Any]) -> None:
        self._spool.write(json.dumps(entry, sort_keys=True).encode() + b"\n")
        self.count += 1

    def lines(self) -> Iterator[bytes]:
        self._spool.seek(0)
        for line in self._spool:
            yield line.rstrip(b"\n")


def _line(data: dict[str, Any]) -> bytes:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


async def _table(
    conn: Connection, root: Path, table: Table, progress: Progress
) -> tuple[dict[str, Any], int]:
    total: int = await conn.fetchval(table.count)
    out = _HashingFile(root, table.file)
    done = 0
    async for row in conn.cursor(table.query, prefetch=PREFETCH):
        out.write(_line(record(row, table.drop)))
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress(table.label, done, total)
    progress(table.label, done, total)
    return out.close(), done


async def _evidence(conn: Connection, root: Path, progress: Progress, files: _Entries) -> int:
    total: int = await conn.fetchval("SELECT count(*) FROM evidence")
    index = _HashingFile(root, "evidence.jsonl")
    done = 0
    query = """SELECT evidence_id, delivery_id, recipient_address, event, event_time, sha256,
                      qualified, xml
                 FROM evidence ORDER BY delivery_id, event_time, evidence_id"""
    async for row in conn.cursor(query, prefetch=PREFETCH):
        relative = f"evidence/{row['delivery_id']}/{row['evidence_id']}.xml"
        xml = _HashingFile(root, relative)
        xml.write(bytes(row["xml"]))
        files.add(xml.close())
        index.write(_line({**record(row, ("xml",)), "file": relative}))
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress("evidence", done, total)
    progress("evidence", done, total)
    files.add(index.close())
    return done


async def _audit(conn: Connection, root: Path, progress: Progress) -> tuple[dict[str, Any], int]:
    total: int = await conn.fetchval("SELECT count(*) FROM audit_events")
    out = _HashingFile(root, "audit.jsonl")
    done = 0
    async for row in conn.cursor("SELECT * FROM audit_events ORDER BY seq", prefetch=1000):
        out.write(
            _line(
                {
                    "seq": row["seq"],
                    "occurred_at": row["occurred_at"].isoformat(),
                    "actor": row["actor"],
                    "action": row["action"],
                    "outcome": row["outcome"],
                    "details": row["details"],
                    "prev_hash": bytes(row["prev_hash"]).hex(),
                    "hash": bytes(row["hash"]).hex(),
                }
            )
        )
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress("audit", done, total)
    progress("audit", done, total)
    return out.close(), done


def _prepare(to: Path) -> tuple[Path, bool]:
    """The directory the archive is written in — ``to/.unfinished-…``, inside the target,
    so that a target that is a mount point or sits in a directory the operator may not
    write to works (review) — and whether ``to`` was made here."""
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise ExportError(f"{to} exists and is not an empty directory")
    made = not to.exists()
    to.mkdir(parents=True, exist_ok=True)
    work = to / f".unfinished-{uuid.uuid4().hex[:12]}"
    work.mkdir()
    return work, made


def _finish(work: Path, to: Path) -> None:
    """Move the sealed archive's entries up into ``to`` (renames within one file system);
    until then ``to`` holds only the unfinished directory, which a failure removes."""
    for entry in sorted(work.iterdir()):
        entry.rename(to / entry.name)
    work.rmdir()


def _write_manifest(to: Path, meta: dict[str, Any], files: _Entries) -> dict[str, Any]:
    """``manifest.json``: the metadata, then ``files`` with one entry a line, streamed."""
    out = _HashingFile(to, MANIFEST)
    head = json.dumps(meta, ensure_ascii=False, sort_keys=True, indent=1)
    out.write(head.removesuffix("\n}").encode() + b',\n "files": [')
    separator = b"\n  "
    for line in files.lines():
        out.write(separator + line)
        separator = b",\n  "
    out.write(b"\n ]\n}\n")
    return out.close()


async def _seal(to: Path, sealer: ManifestSealer) -> None:
    with (to / MANIFEST).open("rb") as manifest, (to / SEAL).open("xb") as seal:
        seal.write(await sealer.seal(manifest))


async def export_archive(
    pool: asyncpg.Pool,
    to: Path,
    sealer: ManifestSealer,
    progress: Progress,
    *,
    created_at: datetime,
    operator: str,
    before_snapshot: Callable[[], Awaitable[None]] | None = None,
) -> ExportResult:
    """Write the archive into ``to`` (new or empty) and seal its manifest.

    It is written in an unfinished directory inside ``to`` and moved up only once sealed:
    an export that fails — the database, the disk, the seal key or the TSA — leaves no
    unsealed copy of the records behind (the unfinished directory is removed, and ``to``
    too when this made it), and ``to`` stays free for the next attempt."""
    work, made = _prepare(to)
    try:
        result = await _write(pool, work, sealer, progress, created_at, operator, before_snapshot)
        _finish(work, to)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if made:
            shutil.rmtree(to, ignore_errors=True)
        raise
    result.directory = to
    return result


async def _write(
    pool: asyncpg.Pool,
    to: Path,
    sealer: ManifestSealer,
    progress: Progress,
    created_at: datetime,
    operator: str,
    before_snapshot: Callable[[], Awaitable[None]] | None,
) -> ExportResult:
    result = ExportResult(to)
    if before_snapshot is not None:
        await before_snapshot()
    with tempfile.TemporaryFile() as spool:
        files = _Entries(spool)
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            snapshot_at: datetime = await conn.fetchval("SELECT now()")
            result.records["evidence"] = await _evidence(conn, to, progress, files)
            for table in TABLES:
                entry, count = await _table(conn, to, table, progress)
                files.add(entry)
                result.records[table.file.removesuffix(".jsonl")] = count
            entry, count = await _audit(conn, to, progress)
            files.add(entry)
            result.records["audit"] = count
        meta = {
            "format": FORMAT,
            "created_at": created_at.isoformat(),
            "snapshot_at": snapshot_at.isoformat(),
            "exported_by": operator,
            "records": result.records,
            "content_included": False,
        }
        manifest = _write_manifest(to, meta, files)
        result.files = files.count
    await _seal(to, sealer)
    result.manifest_sha256 = str(manifest["sha256"])
    return result
