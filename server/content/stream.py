"""The on-disk format of one encrypted content part (R5.5): a STREAM construction.

A part is split into chunks of ``chunk_size`` plaintext bytes (the last one may be shorter,
even empty, so every part has at least one chunk) and each chunk is sealed with AES-256-GCM
on its own — this is what lets a 100 MB upload stream through in bounded memory, and lets
a download stream out without decrypting the whole part first. Sealing chunks separately
opens attacks that one AEAD call over the whole part would not allow: reordering, dropping,
truncating, or splicing chunks from another part. The STREAM construction (Hoang,
Reyhanitabar, Rogaway, Vizár 2015; used by Tink and age) closes them:

- **key**: each part gets its own AES key, HKDF-SHA256(data key, info = delivery id and
  part id). Parts of one delivery never share a GCM key, so nonce uniqueness is per part;
- **nonce** (12 bytes) = random 7-byte per-part prefix ‖ chunk index (uint32) ‖ final flag
  (1 byte): deterministic, never repeats within a part, and a chunk decrypts only at its
  own position with its own "last chunk" status;
- **associated data** = the 16-byte header ‖ delivery id ‖ part id ‖ chunk index (uint64)
  ‖ final flag. The header (format, chunk size, prefix) is thus authenticated by every
  chunk; the part id is the file's random name, so a file moved to another locator, or a
  chunk taken from another part, fails its tag.

Dropping or reordering chunks puts one at the wrong index; cutting off the tail leaves a
chunk that was sealed as "not final" in the last position; appending makes the real final
chunk "not last". Each is a tag failure, reported as :class:`ContentCorrupted`, and
``AESGCM.decrypt`` returns no plaintext for a chunk whose tag fails.

File layout: header (16 bytes: ``VEPC``, format 1, chunk size uint32, prefix) then the
sealed chunks back to back (ciphertext ‖ 16-byte tag each). Chunk boundaries follow from
the file size and the chunk size, so no per-chunk lengths are stored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .keys import DataKey

MAGIC = b"VEPC"
FORMAT = 1
PREFIX_BYTES = 7
TAG_BYTES = 16
#: magic, format, chunk size, nonce prefix
_HEADER = struct.Struct(">4sBI7s")
HEADER_BYTES = _HEADER.size
DEFAULT_CHUNK_SIZE = 1024 * 1024
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 16 * 1024 * 1024
#: The chunk index is a uint32 in the nonce.
MAX_CHUNKS = 2**32


class ContentError(Exception):
    """Stored content cannot be given back as it was written."""


class ContentCorrupted(ContentError):
    """A part failed authentication (altered, reordered, truncated or extended chunks, the
    wrong key) or does not match its recorded size or hash. No plaintext of the failing
    chunk was returned."""


@dataclass(frozen=True)
class Header:
    chunk_size: int
    prefix: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be {MIN_CHUNK_SIZE}…{MAX_CHUNK_SIZE} bytes")
        if len(self.prefix) != PREFIX_BYTES:
            raise ValueError(f"the nonce prefix has {PREFIX_BYTES} bytes")

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, FORMAT, self.chunk_size, self.prefix)

    @classmethod
    def parse(cls, data: bytes, locator: str) -> Header:
        """The header of a stored part; anything unexpected is :class:`ContentCorrupted`
        (the header is authenticated only once a chunk opens, so it is bounds-checked
        here before its chunk size is used to size a read)."""
        if len(data) != HEADER_BYTES:
            raise ContentCorrupted(f"content {locator}: truncated header")
        magic, version, chunk_size, prefix = _HEADER.unpack(data)
        if magic != MAGIC or version != FORMAT:
            raise ContentCorrupted(f"content {locator}: not a format {FORMAT} content file")
        try:
            return cls(chunk_size, prefix)
        except ValueError:
            raise ContentCorrupted(f"content {locator}: bad header") from None


@dataclass(frozen=True)
class Layout:
    """Where the chunks of a stored part are, derived from its size alone."""

    chunks: int
    last_sealed: int  # bytes of the final sealed chunk, tag included
    plaintext_size: int


def layout(ciphertext_size: int, chunk_size: int, locator: str) -> Layout:
    """The chunk layout of a file of ``ciphertext_size`` bytes; impossible sizes (a final
    chunk shorter than a tag, no chunk at all) are :class:`ContentCorrupted`."""
    body = ciphertext_size - HEADER_BYTES
    stride = chunk_size + TAG_BYTES
    if body < TAG_BYTES:
        raise ContentCorrupted(f"content {locator}: truncated")
    full, rest = divmod(body, stride)
    if rest == 0:
        chunks, last = full, stride
    elif rest >= TAG_BYTES:
        chunks, last = full + 1, rest
    else:
        raise ContentCorrupted(f"content {locator}: truncated inside a chunk")
    if chunks > MAX_CHUNKS:
        raise ContentCorrupted(f"content {locator}: too many chunks")
    return Layout(chunks, last, body - chunks * TAG_BYTES)


def sealed_size(plaintext_size: int, chunk_size: int) -> int:
    """The file size of a part of ``plaintext_size`` bytes."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return HEADER_BYTES + plaintext_size + chunks * TAG_BYTES


def _length_prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data


class ChunkCipher:
    """Seals and opens the chunks of one part (see the module docstring). Thread-safe:
    AESGCM objects are, and nothing else here changes after construction."""

    def __init__(self, data_key: DataKey, part_id: str, header: Header) -> None:
        ids = _length_prefixed(data_key.delivery_id) + _length_prefixed(part_id)
        part_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"vep/content/part/v1\0" + ids
        ).derive(data_key.secret)
        self._aead = AESGCM(part_key)
        self._prefix = header.prefix
        self._aad = header.to_bytes() + ids
        self._part_id = part_id

    def _nonce_and_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if not 0 <= index < MAX_CHUNKS:
            raise ValueError("chunk index out of range")
        flag = b"\x01" if final else b"\x00"
        nonce = self._prefix + struct.pack(">I", index) + flag
        return nonce, self._aad + struct.pack(">Q", index) + flag

    def seal(self, index: int, final: bool, plaintext: bytes) -> bytes:
        nonce, aad = self._nonce_and_aad(index, final)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, final: bool, sealed: bytes) -> bytes:
        nonce, aad = self._nonce_and_aad(index, final)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise ContentCorrupted(
                f"content {self._part_id}: chunk {index} fails authentication"
            ) from None
