"""Content encrypted at rest (R5.5): keys, the chunked format, and the file store.

No database: ``sweep`` gets a plain function for "which locators do committed rows name".
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.content import (
    ContentCorrupted,
    ContentNotFound,
    DataKey,
    FileContentStore,
    KeyUnwrapError,
    MasterKey,
    MasterKeyError,
    StoredPart,
    TooLarge,
    WrappedKey,
    ensure_dev_master_key,
    load_master_key,
)
from server.content.stream import HEADER_BYTES, TAG_BYTES, ChunkCipher, sealed_size
from server.errors import PayloadTooLarge

MiB = 1024 * 1024
SMALL = 64  # chunk size of the store used to tamper with many chunks cheaply
DELIVERY = "0b9f4a52-6a57-4f43-9d3c-2f7b0f0d8a11"


async def pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def master() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture
def store(tmp_path: Path, master: MasterKey) -> FileContentStore:
    return FileContentStore(tmp_path / "content", master)


@pytest.fixture
def small(tmp_path: Path, master: MasterKey) -> FileContentStore:
    return FileContentStore(tmp_path / "small", master, chunk_size=SMALL)


async def read_all(store: FileContentStore, part: StoredPart, key: DataKey) -> bytes:
    return b"".join([chunk async for chunk in store.read(part, key)])


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, MiB - 1, MiB, MiB + 1, 2 * MiB, 2 * MiB + 12345], ids=lambda s: f"{s}B"
)
async def test_round_trip(store: FileContentStore, size: int) -> None:
    data = os.urandom(size)
    key, _ = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(data, 1000 if size < 4096 else 65_521), size)
    assert part.size == size
    assert part.sha256 == hashlib.sha256(data).hexdigest()
    path = store.path_of(part.locator)
    assert part.ciphertext_size == path.stat().st_size == sealed_size(size, MiB)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in files_under(store.root)] == [part.locator]
    assert await read_all(store, part, key) == data


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 2 * SMALL, 5 * SMALL + 3])
async def test_chunk_boundaries(small: FileContentStore, size: int) -> None:
    data = os.urandom(size)
    key, _ = small.new_data_key(DELIVERY)
    part = await small.write(DELIVERY, key, pieces(data, 7), size)
    assert part.ciphertext_size == sealed_size(size, SMALL)
    assert await read_all(small, part, key) == data


async def test_chunk_size_is_read_from_the_file(
    small: FileContentStore, store: FileContentStore
) -> None:
    data = os.urandom(1000)
    key, _ = small.new_data_key(DELIVERY)
    part = await small.write(DELIVERY, key, pieces(data), 1000)
    moved = store.path_of(part.locator)
    moved.parent.mkdir(parents=True)
    small.path_of(part.locator).rename(moved)
    assert await read_all(store, part, key) == data


# --- confidentiality and keys --------------------------------------------------------------


async def test_disk_holds_no_plaintext_and_the_name_says_nothing(
    store: FileContentStore, master: MasterKey
) -> None:
    data = b"Sklep o odpovedi pogodbe. " * 2000
    key, wrapped = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(data), len(data))
    raw = store.path_of(part.locator).read_bytes()
    assert b"Sklep" not in raw and b"pogodbe" not in raw
    assert part.sha256 not in part.locator and hashlib.sha256(raw).hexdigest() != part.locator
    # The data key is stored wrapped only; opening it needs this master key and delivery.
    assert key.secret not in wrapped.blob
    again = store.data_key(wrapped, DELIVERY)
    assert await read_all(store, part, again) == data


async def test_another_master_key_cannot_read(store: FileContentStore, tmp_path: Path) -> None:
    data = os.urandom(5000)
    key, wrapped = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(data), len(data))
    other = FileContentStore(store.root, MasterKey(os.urandom(32)))
    with pytest.raises(KeyUnwrapError, match="version 1"):
        other.data_key(wrapped, DELIVERY)
    # Even a same-version key with a forged fingerprint does not open the blob.
    forged = MasterKey(os.urandom(32))
    blob = wrapped.blob[:1] + bytes.fromhex(forged.fingerprint) + wrapped.blob[9:]
    with pytest.raises(KeyUnwrapError):
        forged.unwrap(WrappedKey(1, blob), DELIVERY)
    # A random data key (what a wrong master key would give) fails every chunk.
    with pytest.raises(ContentCorrupted):
        await read_all(store, part, DataKey.generate(DELIVERY))


def test_a_wrapped_key_is_bound_to_its_delivery_and_version(master: MasterKey) -> None:
    key = DataKey.generate(DELIVERY)
    wrapped = master.wrap(key)
    assert (wrapped.version, wrapped.fingerprint) == (1, master.fingerprint)
    assert master.unwrap(wrapped, DELIVERY) == key
    with pytest.raises(KeyUnwrapError, match="this delivery"):
        master.unwrap(wrapped, "another-delivery")
    with pytest.raises(KeyUnwrapError, match="version 2"):
        MasterKey(master.secret, version=2).unwrap(wrapped, DELIVERY)
    tampered = bytearray(wrapped.blob)
    tampered[-1] ^= 1
    with pytest.raises(KeyUnwrapError):
        master.unwrap(WrappedKey(1, bytes(tampered)), DELIVERY)
    assert master.secret.hex() not in repr(master) and key.secret.hex() not in repr(key)


async def test_a_data_key_of_another_delivery_is_refused(store: FileContentStore) -> None:
    key = DataKey.generate("another-delivery")
    with pytest.raises(ValueError, match="another delivery"):
        await store.write(DELIVERY, key, pieces(b"x"), 10)


# --- integrity -----------------------------------------------------------------------------


async def _four_chunks(small: FileContentStore) -> tuple[bytes, DataKey, StoredPart, Path]:
    data = os.urandom(4 * SMALL - 10)
    key, _ = small.new_data_key(DELIVERY)
    part = await small.write(DELIVERY, key, pieces(data, 50), len(data))
    return data, key, part, small.path_of(part.locator)


def _chunk_at(index: int) -> slice:
    start = HEADER_BYTES + index * (SMALL + TAG_BYTES)
    return slice(start, start + SMALL + TAG_BYTES)


@pytest.mark.parametrize(
    "offset",
    [0, 4, 8, 12, HEADER_BYTES, HEADER_BYTES + SMALL + 3, -1],
    ids=["magic", "format", "chunk-size", "prefix", "ciphertext", "tag", "last-tag"],
)
async def test_a_flipped_byte_is_detected(small: FileContentStore, offset: int) -> None:
    _, key, part, path = await _four_chunks(small)
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(raw)
    with pytest.raises(ContentCorrupted):
        await read_all(small, part, key)


async def test_no_plaintext_of_a_failing_chunk_is_given_out(small: FileContentStore) -> None:
    data, key, part, path = await _four_chunks(small)
    raw = bytearray(path.read_bytes())
    raw[_chunk_at(2).start] ^= 0x80
    path.write_bytes(raw)
    got: list[bytes] = []
    with pytest.raises(ContentCorrupted, match="chunk 2"):
        async for chunk in small.read(part, key):
            got.append(chunk)
    assert b"".join(got) == data[: 2 * SMALL]


async def test_swapped_chunks_are_detected(small: FileContentStore) -> None:
    _, key, part, path = await _four_chunks(small)
    raw = path.read_bytes()
    one, two = raw[_chunk_at(1)], raw[_chunk_at(2)]
    path.write_bytes(raw[: _chunk_at(1).start] + two + one + raw[_chunk_at(2).stop :])
    with pytest.raises(ContentCorrupted, match="chunk 1"):
        await read_all(small, part, key)


async def test_truncation_is_detected_even_when_the_record_is_changed_too(
    small: FileContentStore,
) -> None:
    _, key, part, path = await _four_chunks(small)
    raw = path.read_bytes()
    path.write_bytes(raw[: _chunk_at(3).start])  # drop the whole final chunk
    with pytest.raises(ContentCorrupted, match="recorded"):
        await read_all(small, part, key)
    # Someone who can also edit the row: chunk 2 was sealed as "not final".
    forged = StoredPart(part.locator, 3 * SMALL, part.sha256, _chunk_at(3).start)
    with pytest.raises(ContentCorrupted, match="chunk 2"):
        await read_all(small, forged, key)
    path.write_bytes(raw[:-1])  # cut inside the last tag
    with pytest.raises(ContentCorrupted):
        await read_all(small, part, key)


async def test_an_appended_chunk_is_detected(small: FileContentStore) -> None:
    _, key, part, path = await _four_chunks(small)
    raw = path.read_bytes()
    extra = raw[_chunk_at(1)]
    path.write_bytes(raw + extra)
    with pytest.raises(ContentCorrupted, match="recorded"):
        await read_all(small, part, key)
    forged = StoredPart(part.locator, part.size + SMALL, part.sha256, len(raw) + len(extra))
    with pytest.raises(ContentCorrupted):
        await read_all(small, forged, key)


async def test_a_part_moved_to_another_locator_does_not_open(small: FileContentStore) -> None:
    data = os.urandom(300)
    key, _ = small.new_data_key(DELIVERY)
    first = await small.write(DELIVERY, key, pieces(data), 300)
    second = await small.write(DELIVERY, key, pieces(os.urandom(300)), 300)
    # Same delivery, same data key: the part id in the key derivation and the AAD tells.
    small.path_of(first.locator).replace(small.path_of(second.locator))
    moved = StoredPart(second.locator, first.size, first.sha256, first.ciphertext_size)
    with pytest.raises(ContentCorrupted):
        await read_all(small, moved, key)


async def test_a_wrong_recorded_hash_is_detected(small: FileContentStore) -> None:
    _, key, part, _ = await _four_chunks(small)
    wrong = StoredPart(
        part.locator, part.size, hashlib.sha256(b"other").hexdigest(), part.ciphertext_size
    )
    with pytest.raises(ContentCorrupted, match="hash"):
        await read_all(small, wrong, key)


# --- limits, failures, cancellation --------------------------------------------------------


async def test_limit_passes_exactly_and_one_more_byte_leaves_nothing(
    store: FileContentStore,
) -> None:
    data = os.urandom(MiB + 100)
    key, _ = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(data), len(data))
    assert part.size == len(data)
    await store.delete(part.locator)
    with pytest.raises(TooLarge) as refused:
        await store.write(DELIVERY, key, pieces(data + b"!"), len(data))
    assert refused.value.limit == len(data)
    assert isinstance(refused.value, PayloadTooLarge) and refused.value.status == 413
    assert files_under(store.root) == []


async def test_a_failing_upload_leaves_nothing(store: FileContentStore) -> None:
    key, _ = store.new_data_key(DELIVERY)

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write(DELIVERY, key, broken(), 100 * MiB)
    assert files_under(store.root) == []


async def test_cancellation_inside_the_iterator_leaves_nothing(store: FileContentStore) -> None:
    key, _ = store.new_data_key(DELIVERY)

    async def cancelled() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(MiB)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await store.write(DELIVERY, key, cancelled(), 100 * MiB)
    assert files_under(store.root) == []


async def test_a_cancelled_upload_task_leaves_nothing(store: FileContentStore) -> None:
    key, _ = store.new_data_key(DELIVERY)
    sent_enough = asyncio.Event()

    async def slow_client() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield os.urandom(MiB)
        sent_enough.set()
        await asyncio.Event().wait()  # the client stalls, then disconnects
        yield b"never"

    task = asyncio.create_task(store.write(DELIVERY, key, slow_client(), 100 * MiB))
    await sent_enough.wait()
    assert [p.suffix for p in files_under(store.root)] == [".partial"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(store.root) == []


async def test_cancelled_while_a_chunk_is_sealed_in_a_thread(
    store: FileContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread cannot be stopped: the discard must wait for it, not close its file."""
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()
    release = threading.Event()
    original = ChunkCipher.seal

    def slow_seal(self: ChunkCipher, index: int, final: bool, plaintext: bytes) -> bytes:
        loop.call_soon_threadsafe(entered.set)
        release.wait(10)
        return original(self, index, final, plaintext)

    monkeypatch.setattr(ChunkCipher, "seal", slow_seal)
    key, _ = store.new_data_key(DELIVERY)
    task = asyncio.create_task(store.write(DELIVERY, key, pieces(os.urandom(3 * MiB)), 4 * MiB))
    await entered.wait()
    task.cancel()
    await asyncio.sleep(0.05)  # the task is now waiting for its discard, behind the seal
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(store.root) == []


async def test_delete(store: FileContentStore) -> None:
    key, _ = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(b"abc"), 3)
    assert await store.delete(part.locator) is True
    assert await store.delete(part.locator) is False
    with pytest.raises(ContentNotFound):
        await read_all(store, part, key)
    with pytest.raises(ValueError, match="locator"):
        await store.delete("../../etc/passwd")


# --- sweep ---------------------------------------------------------------------------------


async def test_sweep_removes_old_orphans_only(store: FileContentStore) -> None:
    key, _ = store.new_data_key(DELIVERY)
    now = datetime.now(UTC)
    old = (now - timedelta(days=2)).timestamp()
    kept = await store.write(DELIVERY, key, pieces(b"committed"), 100)
    orphan = await store.write(DELIVERY, key, pieces(b"refused"), 100)
    young = await store.write(DELIVERY, key, pieces(b"in flight"), 100)
    for part in (kept, orphan):
        os.utime(store.path_of(part.locator), (old, old))
    crashed = store.path_of(orphan.locator).parent / (("f" * 32) + ".partial")
    crashed.write_bytes(b"half")
    os.utime(crashed, (old, old))
    uploading = store.path_of(young.locator).parent / (("e" * 32) + ".partial")
    uploading.write_bytes(b"half")
    stranger = store.root / "README"
    stranger.write_text("not ours")
    os.utime(stranger, (old, old))
    asked: list[set[str]] = []

    async def referenced(candidates: set[str]) -> set[str]:
        asked.append(candidates)
        return candidates & {kept.locator}

    report = await store.sweep(referenced, now - timedelta(days=1))
    assert report.removed == (orphan.locator,)
    assert (report.partials_removed, report.kept) == (1, 1)
    assert asked and set().union(*asked) == {kept.locator, orphan.locator}
    left = {p.name for p in files_under(store.root)}
    assert left == {kept.locator, young.locator, uploading.name, "README"}
    with pytest.raises(ValueError, match="timezone"):
        await store.sweep(referenced, datetime.now())


# --- the master key file -------------------------------------------------------------------


def test_dev_master_key_is_created_private_and_kept(tmp_path: Path) -> None:
    path = ensure_dev_master_key(tmp_path / "keys" / "content-master.key")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o077 == 0
    first = load_master_key(path)
    ensure_dev_master_key(path)
    assert load_master_key(path) == first
    assert load_master_key(path, version=3).version == 3


def test_raw_and_hex_key_files(tmp_path: Path) -> None:
    secret = os.urandom(32)
    raw, text = tmp_path / "raw.key", tmp_path / "hex.key"
    raw.write_bytes(secret)
    text.write_text(secret.hex().upper() + "\n")
    for path in (raw, text):
        path.chmod(0o600)
        assert load_master_key(path).secret == secret


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    secret = os.urandom(32).hex()
    path.write_text(secret)
    path.chmod(mode)
    with pytest.raises(MasterKeyError, match="chmod 600") as refused:
        load_master_key(path)
    assert str(path) in str(refused.value) and secret not in str(refused.value)


@pytest.mark.parametrize(
    "content",
    [os.urandom(16).hex().encode(), os.urandom(33), os.urandom(31), b"", b"zz" * 32],
    ids=["hex-16-bytes", "raw-33", "raw-31", "empty", "not-hex"],
)
def test_a_key_of_the_wrong_length_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(MasterKeyError, match="master key file") as refused:
        load_master_key(path)
    assert str(path) in str(refused.value)
    if content:
        assert content.hex() not in str(refused.value)


def test_a_missing_or_linked_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match=r"missing\.key"):
        load_master_key(tmp_path / "missing.key")
    target = ensure_dev_master_key(tmp_path / "real.key")
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(MasterKeyError, match=r"link\.key"):
        load_master_key(link)


# --- memory ----------------------------------------------------------------------------------


async def test_a_64_mib_part_streams_in_bounded_memory(store: FileContentStore) -> None:
    size = 64 * MiB
    block = os.urandom(64 * 1024)
    expected = hashlib.sha256()

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            expected.update(block)
            yield block

    key, _ = store.new_data_key(DELIVERY)
    tracemalloc.start()
    try:
        part = await store.write(DELIVERY, key, upload(), size)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        async for chunk in store.read(part, key):
            read += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (part.size, read) == (size, size)
    assert part.sha256 == expected.hexdigest()
    assert write_peak < 16 * MiB, write_peak
    assert read_peak < 16 * MiB, read_peak
