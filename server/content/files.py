"""Blocking file work of :class:`~server.content.store.FileContentStore`, run in threads.

Every method runs under the object's lock, and :meth:`PartWriter.discard` /
:meth:`PartReader.close` take the same lock. That matters because ``asyncio.to_thread``
cannot stop a thread: when the request task is cancelled (the client went away, R5.7)
while a chunk is being sealed, that thread keeps running. Closing the descriptor under it
could let the kernel hand the same number to another file, and the late ``write`` would
land there. With the lock, discarding waits for the chunk in flight, and any call after it
finds the part closed.

:class:`InlinePartReader` is the exception: it opens a part kept in its row (no file, no
thread) with the very checks of :class:`PartReader`, so both kinds of part are refused
for the same faults.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .stream import (
    HEADER_BYTES,
    MAX_CHUNKS,
    TAG_BYTES,
    ChunkCipher,
    ContentCorrupted,
    Header,
    Layout,
    layout,
)

_FILE_MODE = 0o600
#: Builds the cipher of a part once its header (chunk size, nonce prefix) is known.
CipherFactory = Callable[[Header], ChunkCipher]


@dataclass(frozen=True)
class StoredPart:
    """What a ``delivery_parts`` row records about a written part.

    ``sha256`` (hex) and ``size`` are of the plaintext — the hash evidence binds (R6.2);
    ``ciphertext_size`` is the file's size, checked before anything is read back.
    """

    locator: str
    size: int
    sha256: str
    ciphertext_size: int
    #: The sealed part itself (header and chunks, as a file would hold them) when it is
    #: small enough to be kept in its row; None for a part stored as a file.
    inline: bytes | None = field(default=None, repr=False)


class PartClosed(Exception):
    """The part was discarded or closed while work on it was queued."""


def fsync_directory(directory: Path) -> None:
    """Make a rename, creation or removal in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class PartWriter:
    """Writes one part to ``<directory>/<locator>.partial``, then renames it into place."""

    def __init__(self, directory: Path, locator: str, header: Header, cipher: ChunkCipher):
        self._lock = threading.Lock()
        self._directory = directory
        self._locator = locator
        self._partial = directory / f"{locator}.partial"
        self._final = directory / locator
        self._header = header
        self._cipher = cipher
        self._fd: int | None = None
        self._closed = False
        self._renamed = False
        self._index = 0
        self._size = 0
        self._written = 0
        self._sha256 = hashlib.sha256()

    def _open(self) -> None:
        if self._closed:
            raise PartClosed
        if self._fd is not None or self._index:
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._fd = os.open(self._partial, flags, _FILE_MODE)
        except FileNotFoundError:
            # The first part in this fan-out directory: create it (all but the first try
            # cost one system call). The new directory must survive a crash as well as
            # the file.
            try:
                self._directory.mkdir(mode=0o700)
            except FileExistsError:
                pass  # another part created it meanwhile
            else:
                fsync_directory(self._directory.parent)
            self._fd = os.open(self._partial, flags, _FILE_MODE)
        header = self._header.to_bytes()
        _write_all(self._fd, header)
        self._written = len(header)

    def _seal(self, plaintext: bytes, final: bool) -> None:
        if self._index == 0:
            self._open()  # one thread hop for a part that fits in one chunk
        if self._fd is None or self._closed:
            raise PartClosed
        if self._index >= MAX_CHUNKS:
            raise ValueError("part has too many chunks")
        sealed = self._cipher.seal(self._index, final, plaintext)
        self._sha256.update(plaintext)
        _write_all(self._fd, sealed)
        self._index += 1
        self._size += len(plaintext)
        self._written += len(sealed)

    def seal(self, plaintext: bytes) -> None:
        """Append a chunk that is not the last one (exactly ``chunk_size`` bytes)."""
        with self._lock:
            self._seal(plaintext, final=False)

    def commit(self, plaintext: bytes) -> StoredPart:
        """Append the final chunk, fsync, rename into place and fsync the directory, so
        the part survives a crash before the caller commits the row naming it."""
        with self._lock:
            self._seal(plaintext, final=True)
            assert self._fd is not None
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            self._partial.rename(self._final)
            self._renamed = True
            fsync_directory(self._directory)
            return StoredPart(self._locator, self._size, self._sha256.hexdigest(), self._written)

    def discard(self) -> None:
        """Remove whatever was written, the renamed file too (a part whose ``write`` did not
        return to its caller is never referenced). Idempotent."""
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._partial.unlink(missing_ok=True)
            if self._renamed:
                self._final.unlink(missing_ok=True)
                self._renamed = False
                with contextlib.suppress(OSError):
                    fsync_directory(self._directory)


class PartReader:
    """Reads and opens the chunks of one stored part, in order."""

    def __init__(self, path: Path, part: StoredPart, cipher_for: CipherFactory) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._part = part
        self._cipher_for = cipher_for
        self._fd: int | None = None
        self._closed = False
        self._cipher: ChunkCipher | None = None
        self._layout: Layout | None = None
        self._chunk_size = 0
        self._index = 0
        self._size = 0
        self._sha256 = hashlib.sha256()

    def open(self) -> None:
        """Open the file and check its size against the row before any chunk is read, so a
        truncated or extended file is refused before a byte is handed out."""
        with self._lock:
            if self._closed:
                raise PartClosed
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            self._start(os.fstat(self._fd).st_size)

    def _start(self, actual: int) -> None:
        locator = self._part.locator
        if actual != self._part.ciphertext_size:
            raise ContentCorrupted(
                f"content {locator}: {actual} bytes stored, {self._part.ciphertext_size} recorded"
            )
        header = Header.parse(self._read(HEADER_BYTES), locator)
        self._layout = layout(actual, header.chunk_size, locator)
        if self._layout.plaintext_size != self._part.size:
            raise ContentCorrupted(f"content {locator}: size differs from the record")
        self._chunk_size = header.chunk_size
        self._cipher = self._cipher_for(header)

    def _read(self, count: int) -> bytes:
        assert self._fd is not None
        parts: list[bytes] = []
        while count:
            data = os.read(self._fd, count)
            if not data:
                raise ContentCorrupted(f"content {self._part.locator}: file shrank while read")
            parts.append(data)
            count -= len(data)
        return b"".join(parts)

    def next(self) -> bytes | None:
        """The next chunk's plaintext, authenticated; None after the last one, once the
        hash of everything read matched the record."""
        with self._lock:
            if self._closed or self._layout is None:
                raise PartClosed
            assert self._cipher is not None
            chunks = self._layout.chunks
            if self._index == chunks:
                digest = self._sha256.hexdigest()
                if not hmac.compare_digest(digest, self._part.sha256.lower()):
                    raise ContentCorrupted(f"content {self._part.locator}: hash differs")
                return None
            final = self._index == chunks - 1
            length = self._layout.last_sealed if final else self._chunk_size + TAG_BYTES
            plaintext = self._cipher.open(self._index, final, self._read(length))
            self._sha256.update(plaintext)
            self._index += 1
            return plaintext

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class InlinePartReader(PartReader):
    """The same checks and the same chunk opening over a part kept in its row
    (:attr:`StoredPart.inline`): no file, no thread — a few kilobytes open in
    microseconds."""

    def __init__(self, part: StoredPart, cipher_for: CipherFactory) -> None:
        if part.inline is None:
            raise ValueError("not an inline part")
        super().__init__(Path(), part, cipher_for)
        self._sealed = memoryview(part.inline)
        self._offset = 0

    def open(self) -> None:
        with self._lock:
            if self._closed:
                raise PartClosed
            self._start(len(self._sealed))

    def _read(self, count: int) -> bytes:
        data = bytes(self._sealed[self._offset : self._offset + count])
        if len(data) != count:
            raise ContentCorrupted(f"content {self._part.locator}: truncated")
        self._offset += count
        return data
