"""A master-key rotation (R5.5): the current key wraps, retired keys only unwrap, and a
row is re-wrapped under the current key without its data key changing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.content import DataKey, FileContentStore, KeyUnwrapError, MasterKey, MasterKeyRing
from server.settings import SettingsError, load

DELIVERY = "5f0c2a4e-8a44-4a8e-9d1e-0a9d3b1f2c11"


def test_r5_5_the_ring_wraps_with_the_current_key_and_unwraps_retired_rows() -> None:
    old, new = MasterKey(os.urandom(32), 1), MasterKey(os.urandom(32), 2)
    data_key = DataKey.generate(DELIVERY)
    before = old.wrap(data_key)
    ring = MasterKeyRing(new, [old])
    assert ring.unwrap(before, DELIVERY).secret == data_key.secret
    assert not ring.is_current(before)
    after = ring.wrap(data_key)
    assert after.version == 2 and ring.is_current(after)
    # once the old key is gone, only what was re-wrapped opens
    alone = MasterKeyRing(new)
    assert alone.unwrap(after, DELIVERY).secret == data_key.secret
    with pytest.raises(KeyUnwrapError, match=r"version 1 .*this node has version\(s\) 2"):
        alone.unwrap(before, DELIVERY)


def test_r5_5_a_ring_refuses_versions_or_keys_given_twice() -> None:
    secret = os.urandom(32)
    with pytest.raises(ValueError, match="own version"):
        MasterKeyRing(MasterKey(os.urandom(32), 2), [MasterKey(os.urandom(32), 2)])
    with pytest.raises(ValueError, match="current one"):
        MasterKeyRing(MasterKey(secret, 2), [MasterKey(secret, 1)])


def test_r5_5_the_store_rewraps_only_what_is_not_current(tmp_path: Path) -> None:
    old, new = MasterKey(os.urandom(32), 1), MasterKey(os.urandom(32), 2)
    store = FileContentStore(tmp_path, MasterKeyRing(new, [old]))
    data_key = DataKey.generate(DELIVERY)
    before = old.wrap(data_key)
    moved = store.rewrapped(before, store.data_key(before, DELIVERY))
    assert moved is not None and moved.version == 2 and store.key_version == 2
    assert new.unwrap(moved, DELIVERY).secret == data_key.secret
    assert store.rewrapped(moved, store.data_key(moved, DELIVERY)) is None
    # a key wrapped for another delivery does not open, so it is not re-wrapped either
    with pytest.raises(KeyUnwrapError):
        store.data_key(old.wrap(data_key), "another-delivery")


def master_key_file(path: Path) -> Path:
    """A fresh master key file as an operator makes one (hex, mode 0600)."""
    path.write_text(os.urandom(32).hex())
    path.chmod(0o600)
    return path


def test_r5_5_retired_keys_setting_names_the_key_when_wrong(tmp_path: Path) -> None:
    old = master_key_file(tmp_path / "old.key")
    env = {"VEP_DATABASE_URL": "postgresql:///x", "VEP_DATA_DIR": str(tmp_path)}
    settings = load(
        None, {**env, "VEP_CONTENT_KEY_VERSION": "2", "VEP_CONTENT_RETIRED_KEYS": f"1:{old}"}
    )
    assert settings.content_key_version == 2
    assert settings.content_retired_keys == ((1, old),)
    for bad in (f"x:{old}", f"0:{old}", str(old), f"1:{tmp_path / 'missing.key'}"):
        with pytest.raises(SettingsError) as caught:
            load(None, {**env, "VEP_CONTENT_RETIRED_KEYS": bad})
        assert caught.value.key == "VEP_CONTENT_RETIRED_KEYS"
