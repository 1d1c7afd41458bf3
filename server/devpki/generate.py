"""Materialise the development PKI declared in ``certs/dev-pki.yml``.

Keys are generated here, at set-up, and never committed; the certificates are issued by
certomancer from the declarative configuration, with the OCSP/CRL/TSA URLs pointing at
the local PKI service (``vep dev-pki serve``) on the chosen port.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from asn1crypto import pem
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, PKIArchitecture
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "certs" / "dev-pki.yml"
P12_PASSWORD = b"vep"
STATE_FILE = "pki.json"

#: Output name → (architecture, certificate label). Persons get PEM + key + PKCS#12.
PERSONS: dict[str, tuple[str, str]] = {
    "qualified-qscd": ("vep-dev", "qualified-qscd"),
    "qualified-qscd-renewed": ("vep-dev", "qualified-qscd-renewed"),
    "qualified": ("vep-dev", "qualified"),
    "non-qualified": ("vep-dev", "non-qualified"),
    "revoked": ("vep-dev", "revoked"),
    "revocable": ("vep-dev", "revocable"),
    "revocable-sessions": ("vep-dev", "revocable-sessions"),
    "revocable-mailbox": ("vep-dev", "revocable-mailbox"),
    "expired": ("vep-dev", "expired"),
    "key-usage": ("vep-dev", "key-usage"),
    "delegate": ("vep-dev", "delegate"),
    "reader": ("vep-dev", "reader"),
    "sender": ("vep-dev", "sender"),
    "acceptor": ("vep-dev", "acceptor"),
    "manager": ("vep-dev", "manager"),
    "newcomer": ("vep-dev", "newcomer"),
    "former": ("vep-dev", "former"),
    "untrusted": ("untrusted", "untrusted"),
    "outside-qualified": ("outside", "outside-qualified"),
    # Service identities also ship as PEM + key + PKCS#12.
    "provider-seal": ("vep-dev", "provider-seal"),
    "legal-seal": ("vep-dev", "legal-seal"),
    "tls-server": ("vep-dev", "tls-server"),
}
#: Output name → (architecture, certificate label): certificates only.
CERTS_ONLY: dict[str, tuple[str, str]] = {
    "root-ca": ("vep-dev", "root"),
    "qualified-ca": ("vep-dev", "qca"),
    "tsa": ("vep-dev", "tsa"),
    "outside-root-ca": ("outside", "outside-root"),
    "untrusted-root-ca": ("untrusted", "untrusted-root"),
}


def config_digest(config_path: Path) -> str:
    return hashlib.sha256(config_path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class DevPki:
    """Where a generated development PKI lives and which service URL its certificates name."""

    directory: Path
    url_prefix: str
    config_path: Path
    config_sha256: str = ""

    @property
    def current(self) -> bool:
        """Issued from the configuration as it is now (else re-issue: new identities)."""
        return self.config_sha256 == config_digest(self.config_path)

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def p12(self, name: str) -> Path:
        return self.directory / f"{name}.p12"

    @property
    def root(self) -> Path:
        return self.cert("root-ca")

    def admin_url(self, path: str) -> str:
        return f"{self.url_prefix}/_vep/{path}"


def _key_paths(config: dict[str, Any], directory: Path) -> list[Path]:
    paths = []
    for keyset in config["keysets"].values():
        prefix = keyset.get("path-prefix", "")
        for spec in keyset["keys"].values():
            paths.append(directory / prefix / spec["path"])
    return paths


def _write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only (never group/world)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _ensure_keys(config: dict[str, Any], directory: Path) -> None:
    for path in _key_paths(config, directory):
        if path.exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        _write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def load_config(config_path: Path, directory: Path, url_prefix: str) -> CertomancerConfig:
    """The certomancer configuration over the generated keys (service and generator share it)."""
    return CertomancerConfig.from_file(
        str(config_path),
        key_search_dir=str(directory),
        external_url_prefix=url_prefix,
    )


def _arch(cfg: CertomancerConfig, label: str) -> PKIArchitecture:
    return cfg.get_pki_arch(ArchLabel(label))


def generate(directory: Path, url_prefix: str, config_path: Path = DEFAULT_CONFIG) -> DevPki:
    """Generate keys (when missing) and (re)issue every certificate into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    _ensure_keys(config, directory)
    cfg = load_config(config_path, directory, url_prefix)

    for name, (arch_label, cert_label) in CERTS_ONLY.items():
        cert = _arch(cfg, arch_label).get_cert(CertLabel(cert_label))
        (directory / f"{name}.pem").write_bytes(pem.armor("CERTIFICATE", cert.dump()))

    for name, (arch_label, cert_label) in PERSONS.items():
        arch = _arch(cfg, arch_label)
        label = CertLabel(cert_label)
        cert = arch.get_cert(label)
        (directory / f"{name}.pem").write_bytes(pem.armor("CERTIFICATE", cert.dump()))
        key_info = arch.key_set.get_private_key(arch.get_cert_spec(label).subject_key)
        _write_private(directory / f"{name}.key", pem.armor("PRIVATE KEY", key_info.dump()))
        chain = [c for c in arch.get_chain(label)]
        chain_pem = b"".join(pem.armor("CERTIFICATE", arch.get_cert(c).dump()) for c in chain)
        (directory / f"{name}.chain.pem").write_bytes(
            pem.armor("CERTIFICATE", cert.dump()) + chain_pem
        )
        _write_private(
            directory / f"{name}.p12",
            arch.package_pkcs12(label, password=P12_PASSWORD),
        )

    state = {
        "url_prefix": url_prefix,
        "config": str(config_path),
        "config_sha256": config_digest(config_path),
    }
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    return DevPki(directory, url_prefix, config_path, state["config_sha256"])


def load(directory: Path) -> DevPki | None:
    """The PKI already generated in ``directory``, or None."""
    state_path = directory / STATE_FILE
    if not state_path.exists():
        return None
    state = json.loads(state_path.read_text(encoding="utf-8"))
    return DevPki(
        directory, state["url_prefix"], Path(state["config"]), state.get("config_sha256", "")
    )
