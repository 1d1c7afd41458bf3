"""R1.1, R1.2, R1.4 on real public qualified certificates (tests/data/SOURCES.md) and on
the development PKI's declared persons."""

from __future__ import annotations

import pytest

from server.errors import CertificateRefused
from server.trust.certs import Loa, parse
from tests.conftest import DATA


@pytest.mark.parametrize(
    ("name", "loa", "sscd", "serial_number"),
    [
        ("CZ.cer", Loa.HIGH, True, "ICA - 10173707"),  # QcCompliance + QcSSCD
        ("sk_user.cer", Loa.HIGH, True, "PNOSK-7911057319"),  # Slovak eID on QSCD
        ("ec.europa.eu.crt", Loa.HIGH, True, "10100332110004749378"),
        ("ecdsa.cer", Loa.SUBSTANTIAL, False, "750230100307"),  # QcCompliance only
        ("ec.europa.eu.4.cer", Loa.SUBSTANTIAL, False, "83121424102"),
        ("TSA_BE.cer", Loa.LOW, False, "2014"),  # no QCStatements at all
    ],
)
def test_r1_2_loa_of_real_certificates(
    name: str, loa: Loa, sscd: bool, serial_number: str | None
) -> None:
    _, facts = parse((DATA / "certificates" / name).read_bytes())
    assert facts.loa is loa
    assert facts.qc.sscd is sscd
    assert facts.subject_serial_number == serial_number


def test_r1_4_person_id_is_opaque_and_scoped() -> None:
    _, sk = parse((DATA / "certificates" / "sk_user.cer").read_bytes())
    _, cz = parse((DATA / "certificates" / "CZ.cer").read_bytes())
    assert sk.person_id.startswith("p-") and len(sk.person_id) == 34
    assert "7911057319" not in sk.person_id  # no personal data in the identifier
    assert sk.person_id != cz.person_id


def test_r1_1_key_usage_of_real_certificates() -> None:
    _, facts = parse((DATA / "certificates" / "sk_user.cer").read_bytes())
    assert facts.key_usage == frozenset({"non_repudiation"})
    assert facts.key_usage_ok


def test_garbage_is_malformed_not_a_crash() -> None:
    with pytest.raises(CertificateRefused) as info:
        parse(b"\x30\x03\x02\x01\x01")
    assert info.value.reason == "malformed"
    with pytest.raises(CertificateRefused):
        parse(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")


def test_dev_pki_persons(dev_pki) -> None:  # type: ignore[no-untyped-def]
    expected = {
        "qualified-qscd": Loa.HIGH,
        "qualified": Loa.SUBSTANTIAL,
        "non-qualified": Loa.LOW,
        "provider-seal": Loa.LOW,  # qct_eseal
    }
    for name, loa in expected.items():
        assert parse(dev_pki.cert(name).read_bytes())[1].loa is loa, name
    _, original = parse(dev_pki.cert("qualified-qscd").read_bytes())
    _, renewed = parse(dev_pki.cert("qualified-qscd-renewed").read_bytes())
    assert original.person_id == renewed.person_id
    assert original.fingerprint != renewed.fingerprint
    _, ku = parse(dev_pki.cert("key-usage").read_bytes())
    assert not ku.key_usage_ok
