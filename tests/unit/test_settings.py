"""Settings (issue 2 §4): typed, frozen, and a bad or unknown key stops the start naming it."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
import uvloop

from server.serve import new_event_loop
from server.settings import SettingsError, load

BASE = {"VEP_DATABASE_URL": "postgresql://app@/vep?host=/tmp/x"}


def test_defaults() -> None:
    s = load(None, BASE)
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 8443)
    assert s.data_dir == Path(".data")
    assert s.tls is True
    assert s.revocation == "require"
    assert s.trusted_proxies == ()
    assert s.revalidation_seconds == 900  # R1.3
    assert s.session_idle_seconds == 1800  # R1.6
    assert s.anchor_paths == (Path(".data/pki/root-ca.pem"),)
    assert s.evidence_schema_check is False  # R6.1: the tests turn it on (tests/support.py)
    assert load(None, {**BASE, "VEP_EVIDENCE_SCHEMA_CHECK": "on"}).evidence_schema_check


def test_toml_then_environment_overrides(tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.pem"
    anchor.write_text("x")
    toml = f'listen = "0.0.0.0:9443"\nrevocation = "soft-fail"\ntrust_anchors = ["{anchor}"]\n'
    env = {**BASE, "VEP_LISTEN": "[::1]:8444", "VEP_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"}
    s = load(toml, env)
    assert (s.listen_host, s.listen_port) == ("::1", 8444)
    assert s.revocation == "soft-fail"
    assert s.trust_anchors == (anchor,)
    assert s.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"VEP_REVOCATION": "maybe"}, "VEP_REVOCATION"),
        ({"VEP_LISTEN": "8443"}, "VEP_LISTEN"),
        ({"VEP_LISTEN": "127.0.0.1:99999"}, "VEP_LISTEN"),
        ({"VEP_TLS": "perhaps"}, "VEP_TLS"),
        ({"VEP_EVIDENCE_SCHEMA_CHECK": "sometimes"}, "VEP_EVIDENCE_SCHEMA_CHECK"),
        ({"VEP_TRUSTED_PROXIES": "10.0.0.300/8"}, "VEP_TRUSTED_PROXIES"),
        ({"VEP_TRUST_ANCHORS": "/nonexistent/anchor.pem"}, "VEP_TRUST_ANCHORS"),
        ({"VEP_TLS_CERT": "/nonexistent/cert.pem"}, "VEP_TLS_CERT"),
        ({"VEP_REVALIDATION_SECONDS": "soon"}, "VEP_REVALIDATION_SECONDS"),
        ({"VEP_REVALIDATON_SECONDS": "60"}, "VEP_REVALIDATON_SECONDS"),  # a typo is refused
        ({"VEP_TLS": "off"}, "VEP_TLS"),  # plain HTTP only behind a trusted proxy (R1.7)
        ({"VEP_CONTENT_INLINE_MAX_BYTES": "-1"}, "VEP_CONTENT_INLINE_MAX_BYTES"),
        ({"VEP_CONTENT_INLINE_MAX_BYTES": str(2**20 + 1)}, "VEP_CONTENT_INLINE_MAX_BYTES"),
        ({"VEP_DEV_PKI": "off"}, "VEP_TLS_CERT"),
        ({"VEP_EVENT_LOOP": "trio"}, "VEP_EVENT_LOOP"),
        ({"VEP_RECEIPT_SIGNATURE": "fax"}, "VEP_RECEIPT_SIGNATURE"),
        ({"VEP_UPLOAD_TIMEOUT_SECONDS": "0"}, "VEP_UPLOAD_TIMEOUT_SECONDS"),
        # not up to the content sweep's 24 h grace: a slow upload's files would be swept
        ({"VEP_UPLOAD_TIMEOUT_SECONDS": str(24 * 3600)}, "VEP_UPLOAD_TIMEOUT_SECONDS"),
    ],
)
def test_bad_environment_value_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(None, {**BASE, **env})
    assert info.value.key == key
    assert key in str(info.value)


def test_content_inline_max_bytes() -> None:
    assert load(None, BASE).content_inline_max_bytes == 32 * 1024
    off = load(None, {**BASE, "VEP_CONTENT_INLINE_MAX_BYTES": "0"})
    assert off.content_inline_max_bytes == 0
    most = load(None, {**BASE, "VEP_CONTENT_INLINE_MAX_BYTES": str(2**20)})
    assert most.content_inline_max_bytes == 2**20


def test_event_loop_is_uvloop_unless_asyncio_is_asked_for() -> None:
    """``vep serve`` runs on the loop the setting names (its TLS is what the benchmark
    measured); the standard one stays a setting away."""
    for env, kind in (({}, uvloop.Loop), ({"VEP_EVENT_LOOP": "asyncio"}, asyncio.BaseEventLoop)):
        loop = new_event_loop(load(None, {**BASE, **env}))
        try:
            assert isinstance(loop, kind), loop
            assert isinstance(loop, uvloop.Loop) == (kind is uvloop.Loop)
        finally:
            loop.close()


def test_unknown_toml_key_is_named() -> None:
    with pytest.raises(SettingsError) as info:
        load('revocaton = "require"\n', BASE, "vep.toml")
    assert info.value.key == "revocaton"


def test_missing_database_url_is_named() -> None:
    with pytest.raises(SettingsError) as info:
        load(None, {})
    assert info.value.key == "VEP_DATABASE_URL"


def test_tls_off_with_trusted_proxy_is_allowed() -> None:
    s = load(None, {**BASE, "VEP_TLS": "off", "VEP_TRUSTED_PROXIES": "127.0.0.1/32"})
    assert s.tls is False


def test_settings_are_frozen() -> None:
    s = load(None, BASE)
    with pytest.raises(AttributeError):
        s.revocation = "soft-fail"  # type: ignore[misc]


def test_dev_pki_beside_real_anchors_is_warned_of(tmp_path: Path) -> None:
    """VEP_DEV_PKI defaults to on: with real anchors or a real TLS certificate configured
    and it forgotten, the development root would still be trusted for logins."""
    from server.serve import dev_pki_warning

    anchor = tmp_path / "sigen-ca.pem"
    anchor.write_text("x")
    assert dev_pki_warning(load(None, BASE)) is None  # development as it comes
    real = {**BASE, "VEP_TRUST_ANCHORS": str(anchor)}
    warning = dev_pki_warning(load(None, real))
    assert warning is not None and "VEP_DEV_PKI=off" in warning
    behind_nginx = {"VEP_TLS": "off", "VEP_TRUSTED_PROXIES": "127.0.0.1"}
    production = {**real, "VEP_DEV_PKI": "off", **behind_nginx}
    assert dev_pki_warning(load(None, production)) is None
