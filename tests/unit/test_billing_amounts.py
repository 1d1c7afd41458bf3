"""R8.2: the amounts an operator records (``vep admin payment record INV AMOUNT``)."""

from __future__ import annotations

import pytest

from server.errors import InvalidFields
from server.services.billing import parse_amount


@pytest.mark.parametrize(
    ("text", "cents"),
    [("12.50", 1250), ("0.01", 1), (" 7 ", 700), ("10000000000", 10**12)],
)
def test_an_amount_in_euros_is_kept_in_cents(text: str, cents: int) -> None:
    assert parse_amount(text) == cents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("12.505", "positive_with_two_decimals"),
        ("0", "positive_with_two_decimals"),
        ("-5", "positive_with_two_decimals"),
        ("abc", "not_a_number"),
        ("NaN", "not_a_number"),
        ("Infinity", "not_a_number"),  # was an OverflowError traceback
        ("1e17", "too_large"),  # past PostgreSQL's bigint: was a traceback
        ("10000000000.01", "too_large"),
    ],
)
def test_an_amount_the_ledger_cannot_keep_is_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidFields) as info:
        parse_amount(text)
    assert info.value.data["errors"] == [{"field": "amount", "reason": reason}]
