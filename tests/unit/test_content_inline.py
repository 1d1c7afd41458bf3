"""Small parts kept sealed in their row instead of a file (R5.5, migration 0012).

An inline part must be exactly what a file would have held — the same header, chunk
sealing, key derivation and associated data — and must be checked as strictly when read
back; only where the bytes live differs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from server.content import (
    ContentCorrupted,
    DataKey,
    FileContentStore,
    MasterKey,
    StoredPart,
    TooLarge,
)
from server.content.stream import DEFAULT_CHUNK_SIZE, HEADER_BYTES, sealed_size
from server.settings import INLINE_MAX_LIMIT
from tests.unit.test_content_store import DELIVERY, files_under, pieces, read_all

INLINE = 4096


@pytest.fixture
def store(tmp_path: Path) -> FileContentStore:
    return FileContentStore(tmp_path / "content", MasterKey(os.urandom(32)), inline_max=INLINE)


async def _inline(store: FileContentStore, data: bytes) -> tuple[DataKey, StoredPart]:
    key, _ = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(data, 1000), len(data))
    assert part.inline is not None
    return key, part


@pytest.mark.parametrize("size", [0, 1, INLINE - 1, INLINE], ids=lambda s: f"{s}B")
async def test_a_part_up_to_the_limit_is_sealed_for_its_row(
    store: FileContentStore, size: int
) -> None:
    data = os.urandom(size)
    key, part = await _inline(store, data)
    assert files_under(store.root) == []  # written nowhere: the row makes it durable
    assert part.inline is not None
    assert part.ciphertext_size == len(part.inline) == sealed_size(size, DEFAULT_CHUNK_SIZE)
    assert await read_all(store, part, key) == data


async def test_one_byte_more_is_a_file(store: FileContentStore) -> None:
    data = os.urandom(INLINE + 1)
    key, _ = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(data, 1000), len(data))
    assert part.inline is None
    assert [p.name for p in files_under(store.root)] == [part.locator]
    assert await read_all(store, part, key) == data


async def test_inline_off_keeps_even_an_empty_part_in_a_file(tmp_path: Path) -> None:
    store = FileContentStore(tmp_path / "content", MasterKey(os.urandom(32)), inline_max=0)
    key, _ = store.new_data_key(DELIVERY)
    part = await store.write(DELIVERY, key, pieces(b""), 0)
    assert part.inline is None and store.path_of(part.locator).exists()


async def test_the_sealed_bytes_are_what_a_file_holds(store: FileContentStore) -> None:
    """Same format: moved into a file under its locator, the part reads back."""
    data = b"Sklep o odpovedi pogodbe. " * 100
    key, part = await _inline(store, data)
    assert part.inline is not None
    assert b"Sklep" not in part.inline and part.sha256 not in part.locator
    path = store.path_of(part.locator)
    path.parent.mkdir(parents=True)
    path.write_bytes(part.inline)
    assert await read_all(store, replace(part, inline=None), key) == data


@pytest.mark.parametrize(
    "offset", [0, 5, 9, HEADER_BYTES, -1], ids=["magic", "chunk-size", "prefix", "body", "tag"]
)
async def test_a_flipped_byte_is_detected(store: FileContentStore, offset: int) -> None:
    key, part = await _inline(store, os.urandom(1000))
    assert part.inline is not None
    raw = bytearray(part.inline)
    raw[offset] ^= 0x01
    with pytest.raises(ContentCorrupted):
        await read_all(store, replace(part, inline=bytes(raw)), key)


async def test_truncated_extended_or_misrecorded_parts_are_refused(
    store: FileContentStore,
) -> None:
    key, part = await _inline(store, os.urandom(1000))
    assert part.inline is not None
    short = part.inline[:-1]
    cases = [
        replace(part, inline=short),  # the row's size no longer matches
        replace(part, inline=short, ciphertext_size=len(short)),  # both changed: tag fails
        replace(part, inline=part.inline + b"\0" * 32, ciphertext_size=len(part.inline) + 32),
        replace(part, size=part.size - 1),
        replace(part, sha256="0" * 64),
    ]
    for case in cases:
        with pytest.raises(ContentCorrupted):
            await read_all(store, case, key)


async def test_bytes_of_another_part_or_delivery_do_not_open(store: FileContentStore) -> None:
    data = os.urandom(300)
    key, first = await _inline(store, data)
    _, second = await _inline(store, os.urandom(300))
    # Another part's row: the part id in the key derivation and the AAD tells.
    with pytest.raises(ContentCorrupted):
        await read_all(store, replace(second, inline=first.inline, sha256=first.sha256), key)
    with pytest.raises(ContentCorrupted):
        await read_all(store, first, DataKey.generate(DELIVERY))


async def test_past_the_limit_nothing_is_kept(store: FileContentStore) -> None:
    key, _ = store.new_data_key(DELIVERY)
    with pytest.raises(TooLarge):
        await store.write(DELIVERY, key, pieces(os.urandom(100), 10), 50)
    assert files_under(store.root) == []


async def test_the_inline_limit_is_one_chunk(tmp_path: Path) -> None:
    master = MasterKey(os.urandom(32))
    with pytest.raises(ValueError, match="one chunk"):
        FileContentStore(tmp_path, master, chunk_size=64, inline_max=65)
    # the settings' bound (VEP_CONTENT_INLINE_MAX_BYTES, see test_settings) is one chunk
    assert INLINE_MAX_LIMIT == DEFAULT_CHUNK_SIZE
