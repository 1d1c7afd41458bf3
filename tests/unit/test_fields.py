"""R2.1, R2.2, R3.4 field rules, each at its edge."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from server.services import fields as f


def reason(rule, value) -> str | None:  # type: ignore[no-untyped-def]
    try:
        rule(value)
    except f.FieldError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ab", None),  # shortest: 2 characters
        ("a", "format"),
        ("a" * 63, None),  # longest: 63 characters
        ("a" * 64, "format"),
        ("ana.novak", None),
        ("primer-doo", None),
        ("0zero", None),
        ("Ana", "format"),  # upper case
        (".ana", "format"),
        ("-ana", "format"),
        ("ana..novak", "format"),
        ("ana.", "format"),
        ("ana-", "format"),
        ("ana_novak", "format"),
        ("ana novak", "format"),
        ("anač", "format"),
        ("postmaster", "reserved"),
        ("vep", "reserved"),
        ("", "required"),
        (None, "required"),
        (7, "type"),
    ],
)
def test_r2_1_local_part(value: object, expected: str | None) -> None:
    assert reason(f.local_part, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10000003", None),
        ("12345679", None),
        ("1234 5679", None),  # spaces are ignored
        ("12345678", "checksum"),  # one digit off
        ("10000004", "checksum"),
        ("1234567", "format"),  # 7 digits
        ("123456790", "format"),  # 9 digits
        ("01234567", "format"),  # cannot start with 0
        ("SI12345679", "format"),  # the VAT prefix is not part of the tax number
        ("1234567a", "format"),
        ("", "required"),
    ],
)
def test_r2_1_tax_number_mod11(value: str, expected: str | None) -> None:
    assert reason(f.tax_number, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2345676", None),
        ("2345676000", None),  # 10 digits: with a unit number
        ("2345677", "checksum"),
        ("2345675000", "checksum"),
        ("234567", "format"),
        ("23456760", "format"),  # 8 digits
        ("1234560", "checksum"),  # a remainder of 0 has no valid check digit
        ("234567X", "format"),
    ],
)
def test_r2_2_registration_number(value: str, expected: str | None) -> None:
    assert reason(f.registration_number, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SI56 1910 0000 0123 438", None),
        ("SI56191000000123438", None),
        ("si56191000000123438", None),
        ("SI56191000000123439", "checksum"),
        ("SI57191000000123438", "checksum"),
        ("DE89370400440532013000", None),
        ("SI5619100000012343", "checksum"),  # too short for SI
        ("1234", "format"),
    ],
)
def test_r2_1_iban_mod97(value: str, expected: str | None) -> None:
    assert reason(f.iban, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ana@example.si", None),
        ("ana.novak+vep@example.si", None),
        ("ana@", "format"),
        ("@example.si", "format"),
        ("ana example.si", "format"),
        ("ana@@example.si", "format"),
    ],
)
def test_email_syntax(value: str, expected: str | None) -> None:
    assert reason(f.email, value) == expected


@pytest.mark.parametrize(
    ("value", "sent_to"),
    [
        ("Ana@Example.SI", "Ana@example.si"),
        ("ziga@čšž.si", "ziga@xn--bea2o7c.si"),  # any relay takes the ASCII form
        ("žiga@primer.si", "žiga@primer.si"),  # only SMTPUTF8 can carry this one
    ],
)
def test_email_is_kept_as_it_is_sent_to(value: str, sent_to: str) -> None:
    assert f.email(value) == sent_to


NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("born", "now", "of_age"),
    [
        (date(2008, 11, 21), NOON, True),  # 18th birthday today
        (date(2008, 11, 22), NOON, False),  # tomorrow
        (date(2008, 11, 22), datetime(2026, 11, 21, 23, 30, tzinfo=UTC), True),  # already the
        # 22nd in Ljubljana (UTC+1)
        (date(2008, 2, 29), datetime(2026, 2, 28, 12, tzinfo=UTC), False),
        (date(2008, 2, 29), datetime(2026, 3, 1, 12, tzinfo=UTC), True),
    ],
)
def test_r2_1_age_of_majority(born: date, now: datetime, of_age: bool) -> None:
    assert f.of_age(born, now) is of_age


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"street": "Dunajska 1", "postcode": "1000", "city": "Ljubljana"}, None),
        ({"street": "Dunajska 1", "postcode": "0100", "city": "Ljubljana"}, "postcode"),
        ({"street": "Dunajska 1", "postcode": "10000", "city": "Ljubljana"}, "postcode"),
        ({"street": "Ilica 1", "postcode": "10000", "city": "Zagreb", "country": "HR"}, None),
        ({"street": "", "postcode": "1000", "city": "Ljubljana"}, "incomplete_required"),
        ({"postcode": "1000", "city": "Ljubljana"}, "incomplete_required"),
        ("Dunajska 1, Ljubljana", "type"),
        (None, "required"),
    ],
)
def test_postal_address(value: object, expected: str | None) -> None:
    assert reason(f.postal_address, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("x" * 12, None), ("x" * 11, "too_short"), ("", "required"), (None, "required")],
)
def test_r1_5_admin_password_length(value: object, expected: str | None) -> None:
    assert reason(f.admin_password, value) == expected


def test_terms_must_be_accepted_explicitly() -> None:
    assert reason(f.accepted, True) is None
    for value in (False, "true", 1, None):
        assert reason(f.accepted, value) == "must_accept"
