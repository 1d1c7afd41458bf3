"""The shared primitives of settings parsing: the error that names the key, and the
values every settings module parses alike (``server.settings``, ``server.settings_lifecycle``).
Nothing here reads the environment."""

from __future__ import annotations

from typing import Any


class SettingsError(ValueError):
    """A setting is unknown, missing or malformed; ``key`` names it as the user wrote it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"setting {key}: {message}")
        self.key = key
        self.message = message


def bool_value(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise SettingsError(key, f"expected on or off, got {value!r}")


def int_value(key: str, value: Any, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(key, f"expected an integer, got {value!r}") from None
    if number < minimum:
        raise SettingsError(key, f"must be at least {minimum}, got {number}")
    return number


def float_value(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(key, f"expected a number, got {value!r}") from None
    if number <= 0:
        raise SettingsError(key, f"must be positive, got {number}")
    return number


def text_value(key: str, value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise SettingsError(key, "must not be empty")
    return text
