"""Which trust anchors the validation tool uses: the configured ones (``VEP_TRUST_ANCHORS``
plus the dev PKI root when ``VEP_DEV_PKI`` is on and the root exists), plus any given.

The HTTP handler reads them from the application's settings; the command line reads the
same settings from the environment, without requiring a database (the validation tool
needs none), and falls back to the default dev PKI root when the settings cannot be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from asn1crypto import x509

from ..settings import Settings, SettingsError, load
from ..trust.validation import load_certificates

DEFAULT_DEV_ROOT = Path(".data") / "pki" / "root-ca.pem"
_cache: dict[tuple[Path, ...], list[x509.Certificate]] = {}


def settings_anchor_paths(settings: Settings) -> tuple[Path, ...]:
    """The anchors a running service is configured with, those that exist."""
    return tuple(p for p in settings.anchor_paths if p.exists())


def _environment_settings(environ: Mapping[str, str] | None) -> Settings:
    """The settings from ``VEP_CONFIG`` / ``VEP_*`` as the server would read them."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("VEP_DATABASE_URL", "postgresql://unused/")  # not needed to validate
    config = env.pop("VEP_CONFIG", None)
    text = Path(config).read_text(encoding="utf-8") if config else None
    return load(text, env, config or "")


def environment_anchor_paths(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The configured anchors, read from ``VEP_CONFIG`` / ``VEP_*`` as the server would."""
    try:
        return settings_anchor_paths(_environment_settings(environ))
    except (SettingsError, OSError):
        return (DEFAULT_DEV_ROOT,) if DEFAULT_DEV_ROOT.exists() else ()


def environment_seal_certificate(environ: Mapping[str, str] | None = None) -> Path | None:
    """The provider's own seal certificate (chain PEM, the seal first) as configured, when
    the file exists: what ``verify-export`` pins unless told another (R8.5)."""
    try:
        path = _environment_settings(environ).effective_seal_cert
    except (SettingsError, OSError):
        return None
    return path if path.is_file() else None


def seal_certificates(paths: Iterable[Path]) -> list[x509.Certificate]:
    """The seal certificate of each file (a chain file's first one is the seal): what
    ``verify-export`` and ``verify-audit`` pin; ValueError when one is not readable."""
    try:
        return [load_certificates([path])[0] for path in paths]
    except (OSError, ValueError, IndexError) as exc:
        raise ValueError("not a readable certificate file") from exc


def load_anchors(paths: Iterable[Path]) -> list[x509.Certificate]:
    """Every certificate in the files (or directories) given; loaded once per process."""
    key = tuple(paths)
    if key not in _cache:
        _cache[key] = load_certificates(key)
    return _cache[key]


__all__ = [
    "DEFAULT_DEV_ROOT",
    "environment_anchor_paths",
    "environment_seal_certificate",
    "load_anchors",
    "seal_certificates",
    "settings_anchor_paths",
]
