"""Field rules for registration and settings (R2.1, R2.2, R3.4).

Each check returns the normalised value or raises :class:`FieldError` with a stable reason,
so a request collects one ``{field, reason}`` per problem (``invalid_fields``). The number
checks use python-stdnum's implementations of the official algorithms:
- Slovenian tax number (davčna številka): 8 digits, first not 0, mod-11 check digit;
- registration number (matična številka): 7 digits (or 10 with a unit suffix), mod-11
  check digit in position 7;
- IBAN: ISO 13616 mod-97.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from stdnum import iban as std_iban
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.si import ddv, maticna

T = TypeVar("T")
LJUBLJANA = ZoneInfo("Europe/Ljubljana")
AGE_OF_MAJORITY = 18

#: R2.1: `[a-z0-9][a-z0-9.-]{1,62}` — 2 to 63 characters.
LOCAL_PART = re.compile(r"^[a-z0-9][a-z0-9.-]{1,62}$")
#: Addresses that belong to the provider or that users would mistake for it.
RESERVED_LOCAL_PARTS = frozenset(
    {
        "abuse",
        "admin",
        "administrator",
        "hostmaster",
        "info",
        "mailer-daemon",
        "noreply",
        "no-reply",
        "operator",
        "postmaster",
        "root",
        "security",
        "sistem",
        "support",
        "system",
        "vep",
        "webmaster",
        "podpora",
        "ministrstvo",
        "sodisce",
        "upravnik",
    }
)
POSTCODE_SI = re.compile(r"^[1-9][0-9]{3}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
MIN_ADMIN_PASSWORD = 12
MAX_TEXT = 200


class FieldError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Collector:
    """Runs field checks and gathers every failure instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def check(self, field: str, rule: Callable[[Any], T], value: Any) -> T | None:
        try:
            return rule(value)
        except FieldError as exc:
            self.errors.append({"field": field, "reason": exc.reason})
            return None

    def fail(self, field: str, reason: str) -> None:
        self.errors.append({"field": field, "reason": reason})


def _string(value: Any) -> str:
    if value is None or value == "":
        raise FieldError("required")
    if not isinstance(value, str):
        raise FieldError("type")
    return value.strip()


def text(value: Any) -> str:
    result = _string(value)
    if not result:
        raise FieldError("required")
    if len(result) > MAX_TEXT:
        raise FieldError("too_long")
    return result


def mailbox_address(value: str) -> str:
    """A mailbox address as it is stored and compared: trimmed, in lower case."""
    return value.strip().lower()


def local_part(value: Any) -> str:
    result = _string(value)
    if not LOCAL_PART.match(result):
        raise FieldError("format")
    if ".." in result or result.endswith((".", "-")):
        raise FieldError("format")
    if result in RESERVED_LOCAL_PARTS:
        raise FieldError("reserved")
    return result


def tax_number(value: Any) -> str:
    result = _string(value).replace(" ", "")
    if not re.fullmatch(r"[0-9]{8}", result) or result.startswith("0"):
        raise FieldError("format")
    try:
        ddv.validate(result)
    except StdnumError:
        raise FieldError("checksum") from None
    return result


def registration_number(value: Any) -> str:
    result = _string(value).replace(" ", "")
    if not re.fullmatch(r"[0-9]{7}([0-9]{3})?", result):
        raise FieldError("format")
    try:
        maticna.validate(result)
    except StdnumError:
        raise FieldError("checksum") from None
    return result


def iban(value: Any) -> str:
    result = _string(value).replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", result):
        raise FieldError("format")
    try:
        std_iban.validate(result)
    except StdnumError:
        raise FieldError("checksum") from None
    return result


def email(value: Any) -> str:
    """The address as it is sent to: a domain with Slovenian letters (IDN) in its ASCII
    form (``xn--``), which every mail relay accepts; kept in Unicode it needed SMTPUTF8,
    and without it the confirmation code never arrived (found in review). A local part
    with such letters stays as it is (only SMTPUTF8 can carry it)."""
    result = _string(value)
    try:
        checked = validate_email(result, check_deliverability=False)
    except EmailNotValidError:
        raise FieldError("format") from None
    return str(checked.ascii_email or checked.normalized)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError("type")
    return value


def accepted(value: Any) -> bool:
    """Terms and price list must be accepted explicitly (R2.1)."""
    if value is not True:
        raise FieldError("must_accept")
    return True


def admin_password(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise FieldError("required")
    if len(value) < MIN_ADMIN_PASSWORD:
        raise FieldError("too_short")
    if len(value) > 256:
        raise FieldError("too_long")
    return value


def birth_date(value: Any) -> date:
    try:
        return date.fromisoformat(_string(value))
    except ValueError:
        raise FieldError("format") from None


def of_age(born: date, now: datetime) -> bool:
    """R2.1: 18 years old on the day of registration (Slovenian calendar day)."""
    today = now.astimezone(LJUBLJANA).date()
    if born.year + AGE_OF_MAJORITY > date.max.year:
        return False  # born in the calendar's last years: not of age in any year we can name
    try:
        birthday = born.replace(year=born.year + AGE_OF_MAJORITY)
    except ValueError:  # born on 29 February: of age on 1 March
        birthday = date(born.year + AGE_OF_MAJORITY, 3, 1)
    return birthday <= today


def postal_address(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FieldError("required" if value is None else "type")
    try:
        street = text(value.get("street"))
        city = text(value.get("city"))
        country = _string(value.get("country", "SI")).upper()
        postcode = _string(value.get("postcode"))
    except FieldError as exc:
        raise FieldError(f"incomplete_{exc.reason}") from None
    if not COUNTRY.match(country):
        raise FieldError("country")
    if country == "SI" and not POSTCODE_SI.match(postcode):
        raise FieldError("postcode")
    return {"street": street, "postcode": postcode, "city": city, "country": country}


def choice(*options: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        result = _string(value)
        if result not in options:
            raise FieldError("choice")
        return result

    return rule
