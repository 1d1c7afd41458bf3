"""Keys for content at rest (R5.5): one master key per service, one data key per delivery.

The master key (32 random bytes) lives in a file readable by the service only and is read
once at start; it never encrypts content itself. Each delivery gets a fresh 32-byte data
key, stored only *wrapped* by the master key (AES-256-GCM, the delivery id as associated
data), so a wrapped key copied to another delivery's row does not unwrap, and clearing it
when the content is disposed of (R8.1, ``RetentionStore``) makes the content unreadable
(crypto-erasure) even where a disk keeps old blocks of the files. Copies of the row itself
(WAL, backups) keep the wrapped key as long as the master key lives: erasing those needs a
master-key rotation — :class:`MasterKeyRing` (a current key that wraps, retired keys that
only unwrap) and ``vep admin content-rekey``, which wraps every live row under the current
key, after which the retired key file is destroyed.

``version`` goes into ``deliveries.key_version`` and into the associated data; the
wrapped bytes also carry an 8-byte fingerprint of the master key, so after a rotation a
row wrapped under another key fails with a clear :class:`KeyUnwrapError` naming both
versions instead of a bare tag failure. Errors name the key *file*, never key bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_WRAP_FORMAT = 1
_FINGERPRINT_BYTES = 8
_NONCE_BYTES = 12
#: format (1) | fingerprint (8) | nonce (12) | wrapped key (32) | GCM tag (16)
WRAPPED_BYTES = 1 + _FINGERPRINT_BYTES + _NONCE_BYTES + KEY_BYTES + 16
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class MasterKeyError(ValueError):
    """The master key file is missing, unsafe or malformed; the message names the file."""


class KeyUnwrapError(Exception):
    """A wrapped data key does not open with this master key for this delivery."""


def _fingerprint(secret: bytes) -> bytes:
    # One-way and domain-separated: identifies the key in wrapped blobs and logs without
    # revealing anything about it.
    return hmac.new(secret, b"vep/content/master-key-id/v1", hashlib.sha256).digest()[
        :_FINGERPRINT_BYTES
    ]


def _wrap_aad(version: int, delivery_id: str) -> bytes:
    return b"vep/content/wrap/v1\0%d\0%s" % (version, delivery_id.encode("utf-8"))


@dataclass(frozen=True)
class DataKey:
    """A delivery's content key (32 bytes); every part of that delivery is encrypted under
    keys derived from it. ``delivery_id`` is the canonical text (``str(uuid)``) it belongs
    to; the content store binds it into every chunk's associated data."""

    delivery_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a data key has {KEY_BYTES} bytes")

    @classmethod
    def generate(cls, delivery_id: str) -> DataKey:
        return cls(delivery_id, secrets.token_bytes(KEY_BYTES))

    def __repr__(self) -> str:
        return f"DataKey(delivery_id={self.delivery_id!r})"


@dataclass(frozen=True)
class WrappedKey:
    """What the deliveries row stores: ``blob`` → ``wrapped_key``, ``version`` →
    ``key_version``. Neither is secret."""

    version: int
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return self.blob[1 : 1 + _FINGERPRINT_BYTES].hex()


@dataclass(frozen=True)
class MasterKey:
    """The provider's master key; ``version`` numbers it for rotation."""

    secret: bytes = field(repr=False)
    version: int = 1
    # Derived once: every delivery wraps a key, every read unwraps one (issue 4 benchmark).
    _id: bytes = field(init=False, repr=False, compare=False)
    _aead: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"a master key has {KEY_BYTES} bytes")
        if self.version < 1:
            raise ValueError("a master key version is a positive integer")
        object.__setattr__(self, "_id", _fingerprint(self.secret))
        object.__setattr__(self, "_aead", AESGCM(self.secret))

    @property
    def fingerprint(self) -> str:
        """A non-secret identifier of the key (16 hex digits)."""
        return self._id.hex()

    def __repr__(self) -> str:
        return f"MasterKey(version={self.version}, fingerprint={self.fingerprint})"

    def wrap(self, data_key: DataKey) -> WrappedKey:
        """Encrypt ``data_key`` for storage next to its delivery (R5.5)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(
            nonce, data_key.secret, _wrap_aad(self.version, data_key.delivery_id)
        )
        header = bytes([_WRAP_FORMAT]) + self._id
        return WrappedKey(self.version, header + nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, delivery_id: str) -> DataKey:
        """The data key of ``delivery_id``, or :class:`KeyUnwrapError` when the blob was
        wrapped under another master key, for another delivery, or was altered."""
        blob = wrapped.blob
        if len(blob) != WRAPPED_BYTES or blob[0] != _WRAP_FORMAT:
            raise KeyUnwrapError("wrapped data key: unknown format")
        if wrapped.version != self.version or wrapped.fingerprint != self.fingerprint:
            raise KeyUnwrapError(
                f"wrapped data key: made with master key version {wrapped.version} "
                f"({wrapped.fingerprint}); this is version {self.version} ({self.fingerprint})"
            )
        nonce_at = 1 + _FINGERPRINT_BYTES
        nonce = blob[nonce_at : nonce_at + _NONCE_BYTES]
        try:
            secret = self._aead.decrypt(
                nonce, blob[nonce_at + _NONCE_BYTES :], _wrap_aad(self.version, delivery_id)
            )
        except InvalidTag:
            raise KeyUnwrapError(
                "wrapped data key: does not open for this delivery (altered or moved)"
            ) from None
        return DataKey(delivery_id, secret)


class MasterKeyRing:
    """The master key that wraps new data keys, and the retired ones that still unwrap
    rows made before a rotation (R5.5). A row names its key by ``key_version`` (and the
    blob carries the key's fingerprint), so versions must differ, and so must the keys."""

    def __init__(self, current: MasterKey, retired: Sequence[MasterKey] = ()) -> None:
        keys = [current, *retired]
        if len({k.version for k in keys}) != len(keys):
            raise ValueError("every master key of the ring needs its own version")
        if len({k.fingerprint for k in keys}) != len(keys):
            raise ValueError("a retired master key is the current one, or listed twice")
        self.current = current
        self._by_version = {k.version: k for k in keys}

    def __repr__(self) -> str:
        return f"MasterKeyRing(current={self.current!r}, versions={sorted(self._by_version)})"

    def wrap(self, data_key: DataKey) -> WrappedKey:
        return self.current.wrap(data_key)

    def unwrap(self, wrapped: WrappedKey, delivery_id: str) -> DataKey:
        key = self._by_version.get(wrapped.version)
        if key is None:
            raise KeyUnwrapError(
                f"wrapped data key: made with master key version {wrapped.version} "
                f"({wrapped.fingerprint}); this node has version(s) "
                f"{', '.join(str(v) for v in sorted(self._by_version))}"
            )
        return key.unwrap(wrapped, delivery_id)

    def is_current(self, wrapped: WrappedKey) -> bool:
        """Whether ``wrapped`` is under the current key (nothing to re-wrap)."""
        return (
            wrapped.version == self.current.version
            and wrapped.fingerprint == self.current.fingerprint
        )


def _parse(raw: bytes, path: Path) -> bytes:
    # 32 raw bytes, unless all of them are hex digits: that is a 16-byte key written as
    # hex by mistake (random bytes are all hex digits with probability ~1e-34).
    if len(raw) == KEY_BYTES and not set(raw) <= _HEX_DIGITS:
        return raw
    text = raw.strip()
    if not text or not set(text) <= _HEX_DIGITS or len(text) % 2:
        raise MasterKeyError(
            f"master key file {path}: expected {KEY_BYTES} raw bytes or {2 * KEY_BYTES} hex digits"
        )
    if len(text) != 2 * KEY_BYTES:
        raise MasterKeyError(
            f"master key file {path}: the key has {len(text) // 2} bytes, expected {KEY_BYTES}"
        )
    return bytes.fromhex(text.decode("ascii"))


def load_master_key(path: Path, version: int = 1) -> MasterKey:
    """Read the master key once at start (R5.5).

    Refused: a missing file, something other than a regular file, a file any group or
    other user may read or write (like ssh with private keys), a key of the wrong length.
    The mode is checked on the opened descriptor, so a swap between check and read cannot
    slip an unsafe file in.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise MasterKeyError(f"master key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyError(f"master key file {path}: not a regular file")
        if info.st_mode & 0o077:
            raise MasterKeyError(
                f"master key file {path}: mode {stat.S_IMODE(info.st_mode):04o} lets group "
                "or others access it; chmod 600 and make it owned by the service user"
            )
        if info.st_size > 4 * KEY_BYTES:
            raise MasterKeyError(f"master key file {path}: too large for a key")
        raw = os.read(fd, 4 * KEY_BYTES + 1)
    finally:
        os.close(fd)
    return MasterKey(_parse(raw, path), version)


def ensure_dev_master_key(path: Path) -> Path:
    """Create a random master key (hex, mode 0600) unless ``path`` exists; for ``make run``
    and test set-up only — production keys are provisioned by the operator. An existing
    file is left as it is (it is checked when loaded)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, secrets.token_hex(KEY_BYTES).encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
