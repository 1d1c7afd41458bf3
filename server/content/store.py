"""Where delivery content lives, encrypted at rest by the provider (R5.5).

:class:`ContentStore` is what the services use; :class:`FileContentStore` keeps parts as
files on a local (or shared, POSIX) file system, and an S3-compatible store can implement
the same protocol later.

A part of at most ``inline_max`` bytes (``VEP_CONTENT_INLINE_MAX_BYTES``) is sealed the
same way but kept in its ``delivery_parts`` row, committed with it (migration 0012). A
larger part is written *before* the row that refers to it: ``write`` returns only once the file
is fsynced and renamed into place and the directory fsynced, so a committed row never
points at content a crash could lose. The reverse — a file no row refers to, after a
crash, a refused submission or a client that went away — is left to :meth:`sweep`, which
removes files older than a grace period that no committed row names. A failing or
cancelled ``write`` removes its own file at once, so a refused upload leaves nothing
behind (R5.7).

File names are random 128-bit ids, not hashes of the content: a name derived from the
plaintext hash would let anyone who can list the directory confirm that a known document
is stored, and one derived from the ciphertext hash would be known only after writing,
while the random id goes into every chunk's associated data before the first byte is
written (see :mod:`server.content.stream`). Parts are spread over 256 subdirectories by
the first two hex digits. Nothing here logs or raises with content or key bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..errors import PayloadTooLarge
from .files import InlinePartReader, PartReader, PartWriter, StoredPart, fsync_directory
from .keys import DataKey, MasterKey, MasterKeyRing, WrappedKey
from .stream import DEFAULT_CHUNK_SIZE, PREFIX_BYTES, ChunkCipher, ContentError, Header

_LOCATOR = re.compile(r"^[0-9a-f]{32}$")
_PARTIAL = re.compile(r"^[0-9a-f]{32}\.partial$")
#: Locators passed to ``referenced`` at a time during a sweep.
SWEEP_BATCH = 1000

#: Asks the database which of these locators a committed row refers to.
Referenced = Callable[[set[str]], Awaitable[set[str]]]


class TooLarge(PayloadTooLarge):
    """R5.7: the part passed the size limit; nothing of it was kept (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class ContentNotFound(ContentError):
    """No content is stored under this locator (deleted, or never written)."""


@dataclass(frozen=True)
class SweepReport:
    """What one :meth:`ContentStore.sweep` removed and kept."""

    removed: tuple[str, ...]  # locators of orphaned parts
    partials_removed: int  # unfinished uploads of crashed writers
    kept: int  # old enough, but referenced


class ContentStore(Protocol):
    def new_data_key(self, delivery_id: str) -> tuple[DataKey, WrappedKey]:
        """A fresh data key for a new delivery, and its wrapped form for the row."""
        ...

    def data_key(self, wrapped: WrappedKey, delivery_id: str) -> DataKey:
        """The data key of a stored delivery (:class:`KeyUnwrapError` if it does not
        open)."""
        ...

    @property
    def key_version(self) -> int:
        """The version of the master key that wraps new data keys (R5.5)."""
        ...

    def rewrapped(self, wrapped: WrappedKey, data_key: DataKey) -> WrappedKey | None:
        """``data_key`` (opened from ``wrapped``) wrapped under the current master key, or
        None when ``wrapped`` already is (R5.5, a master-key rotation)."""
        ...

    async def write(
        self, delivery_id: str, data_key: DataKey, chunks: AsyncIterable[bytes], limit: int
    ) -> StoredPart:
        """Encrypt and store one part, streaming; raise :class:`TooLarge` past ``limit``
        plaintext bytes. On return the part is durable; on any exception (cancellation
        included) nothing of it is left.

        A small part may come back with :attr:`StoredPart.inline` set instead: sealed the
        same way but written nowhere — the caller keeps those bytes in the row it commits,
        which makes them durable, and hands them back to :meth:`read`."""
        ...

    def read(self, part: StoredPart, data_key: DataKey) -> AsyncIterator[bytes]:
        """The part's plaintext, chunk by chunk, each authenticated before it is yielded;
        :class:`ContentCorrupted` on any failure, :class:`ContentNotFound` if absent."""
        ...

    async def delete(self, locator: str) -> bool:
        """Remove a part (R8.1); True if it existed."""
        ...

    async def sweep(self, referenced: Referenced, older_than: datetime) -> SweepReport:
        """Remove parts last written before ``older_than`` that no committed row refers
        to, and unfinished uploads older than that."""
        ...


def _check_locator(locator: str) -> str:
    # Also what keeps a locator from a row from naming a path outside the store.
    if not _LOCATOR.match(locator):
        raise ValueError("not a content locator")
    return locator


class FileContentStore:
    """Parts as files under ``root`` (mode 0700 directories, 0600 files), data keys wrapped
    by ``master`` (its current key; retired keys of a ring only unwrap).

    ``chunk_size`` (plaintext bytes per sealed chunk) is recorded in each file, so it may
    change without affecting parts already written. A part of at most ``inline_max``
    bytes is not written to a file at all but returned sealed, for its row (see
    :meth:`ContentStore.write`): for a small part the file's inode, fsyncs, rename and
    thread hop cost far more than the encryption (migration 0012).
    """

    def __init__(
        self,
        root: Path,
        master: MasterKey | MasterKeyRing,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        make_root: bool = True,
        inline_max: int = 0,
    ) -> None:
        Header(chunk_size, bytes(PREFIX_BYTES))  # validates the size
        if not 0 <= inline_max <= chunk_size:
            raise ValueError("inline_max must be 0…chunk_size: an inline part is one chunk")
        self._root = root
        self._master = master if isinstance(master, MasterKeyRing) else MasterKeyRing(master)
        self._chunk_size = chunk_size
        self._inline_max = inline_max
        if make_root:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def new_data_key(self, delivery_id: str) -> tuple[DataKey, WrappedKey]:
        data_key = DataKey.generate(delivery_id)
        return data_key, self._master.wrap(data_key)

    def data_key(self, wrapped: WrappedKey, delivery_id: str) -> DataKey:
        return self._master.unwrap(wrapped, delivery_id)

    @property
    def key_version(self) -> int:
        return self._master.current.version

    def rewrapped(self, wrapped: WrappedKey, data_key: DataKey) -> WrappedKey | None:
        return None if self._master.is_current(wrapped) else self._master.wrap(data_key)

    def _directory(self, locator: str) -> Path:
        return self._root / locator[:2]

    def path_of(self, locator: str) -> Path:
        """The file of a part (for operators and tests)."""
        return self._directory(_check_locator(locator)) / locator

    async def write(
        self, delivery_id: str, data_key: DataKey, chunks: AsyncIterable[bytes], limit: int
    ) -> StoredPart:
        if data_key.delivery_id != delivery_id:
            raise ValueError("the data key belongs to another delivery")
        size_per_chunk = self._chunk_size
        locator = secrets.token_hex(16)
        header = Header(size_per_chunk, secrets.token_bytes(PREFIX_BYTES))
        cipher = ChunkCipher(data_key, locator, header)
        # Made when a file is first needed: a part kept in its row never builds a path.
        writer: PartWriter | None = None
        try:
            # The file is created by the first chunk written, in the same thread hop: a part
            # that fits in one chunk costs one hop (create, write, fsync, rename, fsync).
            buffer = bytearray()
            size = 0
            async for piece in chunks:
                size += len(piece)
                if size > limit:
                    raise TooLarge(limit)
                buffer += piece
                # Only a chunk followed by more data is known not to be the last one.
                while len(buffer) > size_per_chunk:
                    block = bytes(buffer[:size_per_chunk])
                    del buffer[:size_per_chunk]
                    writer = writer or self._writer(locator, header, cipher)
                    await asyncio.to_thread(writer.seal, block)
            if writer is None and self._inline_max > 0 and size <= self._inline_max:
                return self._sealed_inline(locator, header, cipher, bytes(buffer))
            writer = writer or self._writer(locator, header, cipher)
            return await asyncio.to_thread(writer.commit, bytes(buffer))
        except BaseException:
            if writer is not None:
                # The thread finishes the discard even if this await is cancelled again.
                await asyncio.to_thread(writer.discard)
            raise

    def _writer(self, locator: str, header: Header, cipher: ChunkCipher) -> PartWriter:
        return PartWriter(self._directory(locator), locator, header, cipher)

    @staticmethod
    def _sealed_inline(
        locator: str, header: Header, cipher: ChunkCipher, plaintext: bytes
    ) -> StoredPart:
        sealed = header.to_bytes() + cipher.seal(0, True, plaintext)
        digest = hashlib.sha256(plaintext).hexdigest()
        return StoredPart(locator, len(plaintext), digest, len(sealed), inline=sealed)

    async def read(self, part: StoredPart, data_key: DataKey) -> AsyncIterator[bytes]:
        locator = part.locator
        if part.inline is not None:
            inline = InlinePartReader(part, lambda header: ChunkCipher(data_key, locator, header))
            inline.open()
            while (plaintext := inline.next()) is not None:
                if plaintext:
                    yield plaintext
            return
        reader = PartReader(
            self.path_of(locator), part, lambda header: ChunkCipher(data_key, locator, header)
        )
        try:
            try:
                await asyncio.to_thread(reader.open)
            except FileNotFoundError:
                raise ContentNotFound(f"content {locator}: not stored") from None
            while (plaintext := await asyncio.to_thread(reader.next)) is not None:
                if plaintext:
                    yield plaintext
        finally:
            reader.close()  # waits for a chunk in flight (≈1 ms), see files.py

    async def delete(self, locator: str) -> bool:
        return await asyncio.to_thread(self._delete, self.path_of(locator))

    @staticmethod
    def _delete(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_directory(path.parent)
        return True

    async def sweep(self, referenced: Referenced, older_than: datetime) -> SweepReport:
        """See :meth:`ContentStore.sweep`. ``older_than`` must leave a grace period longer
        than the longest submission (first part written → row committed): a part written
        for a delivery whose row is not committed yet looks exactly like an orphan."""
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        cutoff = older_than.timestamp()
        removed: list[str] = []
        partials = kept = 0
        directories = await asyncio.to_thread(self._fanout)
        for directory in directories:
            old, stale = await asyncio.to_thread(self._old_files, directory, cutoff)
            for name in stale:
                partials += await asyncio.to_thread(self._unlink, directory / name)
            for start in range(0, len(old), SWEEP_BATCH):
                batch = set(old[start : start + SWEEP_BATCH])
                live = await referenced(batch)
                kept += len(batch & live)
                for locator in sorted(batch - live):
                    if await asyncio.to_thread(self._unlink, directory / locator):
                        removed.append(locator)
        return SweepReport(tuple(removed), partials, kept)

    def _fanout(self) -> list[Path]:
        try:
            entries = list(os.scandir(self._root))
        except FileNotFoundError:
            return []
        return sorted(
            Path(e.path) for e in entries if len(e.name) == 2 and e.is_dir(follow_symlinks=False)
        )

    @staticmethod
    def _old_files(directory: Path, cutoff: float) -> tuple[list[str], list[str]]:
        old: list[str] = []
        stale: list[str] = []
        with os.scandir(directory) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue  # young: possibly an upload in progress or not yet committed
                if _LOCATOR.match(entry.name):
                    old.append(entry.name)
                elif _PARTIAL.match(entry.name):
                    stale.append(entry.name)
        return sorted(old), sorted(stale)

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
