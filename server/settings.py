"""Typed, frozen settings read once from a TOML file (``VEP_CONFIG``) and ``VEP_*`` variables.

The only module that reads the process environment. An unknown key or a bad value stops
the start with a :class:`SettingsError` that names the key, so a typo in production is a
refusal to start rather than a silently ignored security option (R1.1, R1.7).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from . import settings_lifecycle
from .settings_lifecycle import LifecycleSettings
from .settings_values import SettingsError as SettingsError  # re-exported: callers use it
from .settings_values import bool_value as _bool
from .settings_values import float_value as _float
from .settings_values import int_value as _int
from .settings_values import text_value as _text

RevocationPolicy = Literal["require", "soft-fail"]
ReceiptSignature = Literal["sign", "login"]
EventLoop = Literal["uvloop", "asyncio"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV_PREFIX = "VEP_"
CONFIG_VARIABLE = "VEP_CONFIG"
#: The largest ``content_inline_max_bytes``: the content store's chunk size
#: (``server.content.stream.DEFAULT_CHUNK_SIZE``), as an inline part is one chunk.
INLINE_MAX_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    database_url: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8443
    data_dir: Path = Path(".data")
    tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: PEM files or directories of anchors (``:``-separated in the environment).
    trust_anchors: tuple[Path, ...] = ()
    #: Trust the development PKI in ``<data_dir>/pki`` (root + qualified CA) and use its
    #: TLS server certificate by default. Off in production.
    dev_pki: bool = True
    revocation: RevocationPolicy = "require"
    trusted_proxies: tuple[IPNetwork, ...] = ()
    #: R1.3: a certificate check is reused for at most this long.
    revalidation_seconds: int = 900
    #: R1.6: a browser session ends after this much inactivity.
    session_idle_seconds: int = 1800
    #: Bound on the per-node cache of certificate checks (entries).
    check_cache_size: int = 10_000
    log_level: str = "INFO"
    #: Timeout for one OCSP/CRL/AIA fetch, seconds.
    fetch_timeout_seconds: float = 10.0
    #: R2.1: mailbox addresses are ``local@mail_domain``.
    mail_domain: str = "vep.si"
    #: R5.4: notifications go out through this SMTP server (aiosmtplib).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "VEP <noreply@vep.si>"
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    #: How often the outbox worker looks for due notifications.
    outbox_poll_seconds: float = 2.0
    #: Give up on a notification after this many tries (backoff doubles from 30 s, capped
    #: at an hour) — and not before it has been tried this many hours: a relay down over a
    #: weekend must not lose every notice (found in review: 12 tries took ~5 hours).
    outbox_max_attempts: int = 12
    outbox_keep_trying_hours: int = 72
    #: R4.3: directory lookups per person per hour.
    directory_lookups_per_hour: int = 60
    #: R2.2: offline fixture of the business register (entities and representatives);
    #: None = the fixture shipped with the package.
    business_register: Path | None = None
    #: R2.1: the version of the terms and price list a contract refers to.
    terms_version: str = "2026-11"
    #: A TrueType font with the Slovenian letters for contract PDFs.
    contract_font: Path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    #: R5.5: the master key wrapping every delivery's data key (32 random bytes, hex or raw,
    #: in a file readable by the service only); None = <data_dir>/keys/content-master.key,
    #: generated at set-up in development.
    content_key_file: Path | None = None
    #: R5.5: the version of that key, written into every row it wraps; a rotation gives the
    #: new key the next version and lists the old one in ``content_retired_keys``.
    content_key_version: int = 1
    #: Retired master keys that still unwrap rows made before a rotation, until ``vep admin
    #: content-rekey`` has wrapped every row under the current key: ``VERSION:PATH``, …
    content_retired_keys: tuple[tuple[int, Path], ...] = ()
    #: R6.2/R6.5: the provider's seal — a key file (development) or a PKCS#11 token (HSM).
    seal_cert: Path | None = None  # chain PEM; None = the dev PKI's provider-seal
    seal_key: Path | None = None  # None = the dev PKI's provider-seal.key
    pkcs11_library: Path | None = None  # set → the seal key is in this PKCS#11 token
    pkcs11_token: str = "vep-seal"  # noqa: S105 (a token label, not a secret)
    pkcs11_key_label: str = "provider-seal"
    pkcs11_pin: str | None = None
    #: R6.2: the RFC 3161 TSA; None = the dev PKI's TSA service (http://127.0.0.1:9180/…);
    #: "local" = an in-process TSA with the dev PKI's TSA key (benchmarks, development).
    tsa_url: str | None = None
    #: R6.6: qualified mode refuses to issue evidence unless seal and TSA are qualified.
    qualified: bool = False
    #: R6.1: validate every evidence against ``schemas/evidence`` as it is sealed. Off by
    #: default: the sealer writes the XML from fixed templates in which every value a user
    #: supplies is an ``xs:string`` (the schema's facets bind only values the server makes),
    #: and the test suite seals every event type, hostile strings included, with the check
    #: on — in production it would repeat that proof at ~40 % of a seal's CPU.
    evidence_schema_check: bool = False
    #: R5.3: "sign" = accept a return receipt by signing the vročilnica; "login" = by an
    #: explicit acceptance in a QSCD-authenticated session (the VEP.SI terms' literal rule).
    receipt_signature: ReceiptSignature = "sign"
    #: R5.7 limits.
    max_delivery_bytes: int = 100 * 1024 * 1024
    max_delivery_parts: int = 20
    #: R5.5, R5.7: a submission's parts must arrive within this many seconds (408
    #: ``upload_timeout``, nothing kept). Under the content sweep's 24 h grace, so that a
    #: trickled upload's first files cannot be swept as orphans before its commit.
    upload_timeout_seconds: float = 3600.0
    #: R5.5: a part of at most this many bytes is kept, sealed, in its database row
    #: instead of a file (migration 0012); 0 = every part is a file. At most 1 MiB (one
    #: content chunk).
    content_inline_max_bytes: int = 32 * 1024
    allowed_content_types: tuple[str, ...] = (
        "application/pdf",
        "application/xml",
        "text/xml",
        "text/plain",
        "image/png",
        "image/jpeg",
        "application/zip",
        "application/vnd.etsi.asic-e+zip",
        "application/pkcs7-signature",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text",
    )
    #: R5.3: days after the notification until a return-receipt delivery is deemed served.
    deemed_service_days: int = 15
    #: Server processes sharing the port (SO_REUSEPORT); one Python process uses one core.
    workers: int = 1
    #: The event loop of ``vep serve``: uvloop (libuv, with TLS and sockets in C: ~15 % less
    #: server CPU per delivery than asyncio's pure-Python TLS transport; README,
    #: "Benchmarks") or the standard library's, to fall back on without a rebuild.
    event_loop: EventLoop = "uvloop"
    #: R8, R2.3: schedules, retention, billing, wind-down (:mod:`server.settings_lifecycle`).
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def effective_content_key_file(self) -> Path:
        return self.content_key_file or self.data_dir / "keys" / "content-master.key"

    @property
    def effective_seal_cert(self) -> Path:
        return self.seal_cert or self.pki_dir / "provider-seal.chain.pem"

    @property
    def effective_seal_key(self) -> Path:
        return self.seal_key or self.pki_dir / "provider-seal.key"

    @property
    def effective_tls_cert(self) -> Path | None:
        if self.tls_cert is not None:
            return self.tls_cert
        return self.pki_dir / "tls-server.chain.pem" if self.dev_pki else None

    @property
    def effective_tls_key(self) -> Path | None:
        if self.tls_key is not None:
            return self.tls_key
        return self.pki_dir / "tls-server.key" if self.dev_pki else None

    @property
    def anchor_paths(self) -> tuple[Path, ...]:
        dev = (self.pki_dir / "root-ca.pem",) if self.dev_pki else ()
        return dev + self.trust_anchors

    @property
    def intermediate_paths(self) -> tuple[Path, ...]:
        return (self.pki_dir / "qualified-ca.pem",) if self.dev_pki else ()


# --- parsing ---------------------------------------------------------------------------


def _listen(key: str, value: Any) -> tuple[str, int]:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise SettingsError(key, f"expected host:port, got {text!r}")
    host = host.strip("[]")
    return host, _port(key, port)


def _paths(key: str, value: Any) -> tuple[Path, ...]:
    items = value if isinstance(value, list) else str(value).split(":")
    paths = tuple(Path(str(item)) for item in items if str(item).strip())
    for path in paths:
        if not path.exists():
            raise SettingsError(key, f"no such file or directory: {path}")
    return paths


def _networks(key: str, value: Any) -> tuple[IPNetwork, ...]:
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in items)
    except ValueError as exc:
        raise SettingsError(key, f"bad CIDR: {exc}") from None


def _one_of(kind: Any) -> Callable[[str, Any], Any]:
    """A parser for a value of the ``Literal`` type ``kind``; anything else is refused
    naming the key and the choices."""
    choices: tuple[str, ...] = get_args(kind)

    def parse(key: str, value: Any) -> Any:
        if value in choices:
            return value
        raise SettingsError(key, f"expected {' or '.join(choices)}, got {value!r}")

    return parse


def _log_level(key: str, value: Any) -> str:
    text = str(value).upper()
    if text not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(key, f"expected DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return text


def _existing_file(key: str, value: Any) -> Path:
    path = Path(str(value))
    if not path.is_file():
        raise SettingsError(key, f"no such file: {path}")
    return path


def _retired_keys(key: str, value: Any) -> tuple[tuple[int, Path], ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    found: list[tuple[int, Path]] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        version, sep, path = item.partition(":")
        if not sep or not version.strip().isdigit() or int(version) < 1:
            raise SettingsError(key, f"expected VERSION:PATH (a version from 1), got {item!r}")
        found.append((int(version), _existing_file(key, path.strip())))
    return tuple(found)


def _port(key: str, value: Any) -> int:
    port = _int(key, value, minimum=1)
    if port > 65535:
        raise SettingsError(key, f"port out of range: {port}")
    return port


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _domain(key: str, value: Any) -> str:
    text = str(value).strip().lower()
    if not _DOMAIN.match(text):
        raise SettingsError(key, f"not a domain name: {value!r}")
    return text


def _url(key: str, value: Any) -> str:
    text = _text(key, value)
    if text == "local":  # the in-process development TSA (server.evidence.local_tsa)
        return text
    if not re.match(r"^https?://[^\s/]+", text):
        raise SettingsError(key, f"expected an http(s) URL, got {value!r}")
    return text


#: The longest upload allowed: well under the content sweep's 24 h grace for files no row
#: names yet (``services.sweep.GRACE``).
UPLOAD_TIMEOUT_LIMIT = 12 * 3600.0


def _upload_timeout(key: str, value: Any) -> float:
    seconds = _float(key, value)
    if not 0 < seconds <= UPLOAD_TIMEOUT_LIMIT:
        raise SettingsError(
            key, f"must be more than 0 and at most {UPLOAD_TIMEOUT_LIMIT:.0f}, got {seconds}"
        )
    return seconds


def _inline_max(key: str, value: Any) -> int:
    number = _int(key, value, 0)
    if number > INLINE_MAX_LIMIT:
        raise SettingsError(key, f"must be at most {INLINE_MAX_LIMIT} (one chunk), got {number}")
    return number


def _types(key: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    types = tuple(str(t).strip().lower() for t in items if str(t).strip())
    if not types or not all(re.match(r"^[a-z0-9.+-]+/[a-z0-9.+-]+$", t) for t in types):
        raise SettingsError(key, f"expected media types like application/pdf, got {value!r}")
    return types


#: key → parser returning {field: value}
_PARSERS: dict[str, Callable[[str, Any], dict[str, Any]]] = {
    "database_url": lambda k, v: {"database_url": _text(k, v)},
    "listen": lambda k, v: dict(zip(("listen_host", "listen_port"), _listen(k, v), strict=True)),
    "data_dir": lambda k, v: {"data_dir": Path(_text(k, v))},
    "tls": lambda k, v: {"tls": _bool(k, v)},
    "tls_cert": lambda k, v: {"tls_cert": _existing_file(k, v)},
    "tls_key": lambda k, v: {"tls_key": _existing_file(k, v)},
    "trust_anchors": lambda k, v: {"trust_anchors": _paths(k, v)},
    "dev_pki": lambda k, v: {"dev_pki": _bool(k, v)},
    "revocation": lambda k, v: {"revocation": _one_of(RevocationPolicy)(k, v)},
    "trusted_proxies": lambda k, v: {"trusted_proxies": _networks(k, v)},
    "revalidation_seconds": lambda k, v: {"revalidation_seconds": _int(k, v, 1)},
    "session_idle_seconds": lambda k, v: {"session_idle_seconds": _int(k, v, 1)},
    "check_cache_size": lambda k, v: {"check_cache_size": _int(k, v, 1)},
    "log_level": lambda k, v: {"log_level": _log_level(k, v)},
    "fetch_timeout_seconds": lambda k, v: {"fetch_timeout_seconds": _float(k, v)},
    "mail_domain": lambda k, v: {"mail_domain": _domain(k, v)},
    "smtp_host": lambda k, v: {"smtp_host": _text(k, v)},
    "smtp_port": lambda k, v: {"smtp_port": _port(k, v)},
    "smtp_sender": lambda k, v: {"smtp_sender": _text(k, v)},
    "smtp_starttls": lambda k, v: {"smtp_starttls": _bool(k, v)},
    "smtp_timeout_seconds": lambda k, v: {"smtp_timeout_seconds": _float(k, v)},
    "outbox_poll_seconds": lambda k, v: {"outbox_poll_seconds": _float(k, v)},
    "outbox_max_attempts": lambda k, v: {"outbox_max_attempts": _int(k, v, 1)},
    "outbox_keep_trying_hours": lambda k, v: {"outbox_keep_trying_hours": _int(k, v, 0)},
    "directory_lookups_per_hour": lambda k, v: {"directory_lookups_per_hour": _int(k, v, 1)},
    "business_register": lambda k, v: {"business_register": _existing_file(k, v)},
    "terms_version": lambda k, v: {"terms_version": _text(k, v)},
    "contract_font": lambda k, v: {"contract_font": Path(_text(k, v))},
    "content_key_file": lambda k, v: {"content_key_file": _existing_file(k, v)},
    "content_key_version": lambda k, v: {"content_key_version": _int(k, v, 1)},
    "content_retired_keys": lambda k, v: {"content_retired_keys": _retired_keys(k, v)},
    "seal_cert": lambda k, v: {"seal_cert": _existing_file(k, v)},
    "seal_key": lambda k, v: {"seal_key": _existing_file(k, v)},
    "pkcs11_library": lambda k, v: {"pkcs11_library": _existing_file(k, v)},
    "pkcs11_token": lambda k, v: {"pkcs11_token": _text(k, v)},
    "pkcs11_key_label": lambda k, v: {"pkcs11_key_label": _text(k, v)},
    "pkcs11_pin": lambda k, v: {"pkcs11_pin": _text(k, v)},
    "tsa_url": lambda k, v: {"tsa_url": _url(k, v)},
    "qualified": lambda k, v: {"qualified": _bool(k, v)},
    "evidence_schema_check": lambda k, v: {"evidence_schema_check": _bool(k, v)},
    "receipt_signature": lambda k, v: {"receipt_signature": _one_of(ReceiptSignature)(k, v)},
    "max_delivery_bytes": lambda k, v: {"max_delivery_bytes": _int(k, v, 1)},
    "max_delivery_parts": lambda k, v: {"max_delivery_parts": _int(k, v, 1)},
    "upload_timeout_seconds": lambda k, v: {"upload_timeout_seconds": _upload_timeout(k, v)},
    "content_inline_max_bytes": lambda k, v: {"content_inline_max_bytes": _inline_max(k, v)},
    "allowed_content_types": lambda k, v: {"allowed_content_types": _types(k, v)},
    "deemed_service_days": lambda k, v: {"deemed_service_days": _int(k, v, 1)},
    "workers": lambda k, v: {"workers": _int(k, v, 1)},
    "event_loop": lambda k, v: {"event_loop": _one_of(EventLoop)(k, v)},
}
_FIELDS = {f.name for f in fields(Settings)}


def load(toml_text: str | None, environ: Mapping[str, str], config_name: str = "") -> Settings:
    """Build settings from TOML text (may be None) overlaid with ``VEP_*`` variables."""
    values: dict[str, Any] = {}
    lifecycle: dict[str, Any] = {}
    if toml_text is not None:
        try:
            document = tomllib.loads(toml_text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(config_name or CONFIG_VARIABLE, f"bad TOML: {exc}") from None
        for key, raw in document.items():
            if key in settings_lifecycle.PARSERS:
                _lifecycle(lifecycle, key, key, raw)
                continue
            if key not in _PARSERS:
                raise SettingsError(key, f"unknown key in {config_name or 'config file'}")
            values.update(_PARSERS[key](key, raw))
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_VARIABLE:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in settings_lifecycle.PARSERS:
            _lifecycle(lifecycle, key, name, raw)
            continue
        if key not in _PARSERS:
            raise SettingsError(name, "unknown VEP_ variable")
        values.update(_PARSERS[key](name, raw))
    if "database_url" not in values:
        raise SettingsError("VEP_DATABASE_URL", "missing (or database_url in the config file)")
    values["lifecycle"] = settings_lifecycle.build(lifecycle)
    settings = Settings(**{k: v for k, v in values.items() if k in _FIELDS})
    _check_consistency(settings)
    return settings


def _lifecycle(into: dict[str, Any], key: str, name: str, raw: Any) -> None:
    field_name, parser = settings_lifecycle.PARSERS[key]
    into[field_name] = parser(name, raw)


def _check_consistency(settings: Settings) -> None:
    if not settings.tls and not settings.trusted_proxies:
        raise SettingsError(
            "VEP_TLS",
            "off is allowed only behind a proxy: set VEP_TRUSTED_PROXIES (R1.7)",
        )
    if settings.tls and (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingsError("VEP_TLS_CERT", "VEP_TLS_CERT and VEP_TLS_KEY go together")
    if settings.tls and settings.effective_tls_cert is None:
        raise SettingsError("VEP_TLS_CERT", "required when VEP_TLS=on and VEP_DEV_PKI=off")
    if not settings.anchor_paths:
        raise SettingsError("VEP_TRUST_ANCHORS", "no trust anchor: set it or VEP_DEV_PKI=on")
    versions = [settings.content_key_version, *(v for v, _ in settings.content_retired_keys)]
    if len(set(versions)) != len(versions):
        raise SettingsError(
            "VEP_CONTENT_RETIRED_KEYS",
            "every master key needs its own version, the current one "
            f"(VEP_CONTENT_KEY_VERSION={settings.content_key_version}) included",
        )


def from_environment() -> Settings:
    """Settings of this process: ``VEP_CONFIG`` (if set) overlaid with ``VEP_*``."""
    environ = dict(os.environ)
    config_path = environ.get(CONFIG_VARIABLE)
    text = None
    if config_path:
        try:
            text = Path(config_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(CONFIG_VARIABLE, f"cannot read {config_path}: {exc}") from None
    return load(text, environ, config_path or "")
