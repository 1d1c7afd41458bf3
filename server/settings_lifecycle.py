"""The lifecycle part of the settings (R8, R2.3): schedules, retention, billing, wind-down.

Parsed by :func:`server.settings.load` like every other key (TOML key or ``VEP_*``
variable; a bad value stops the start naming the key); kept apart only so that each module
stays one concept. Nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .jobs.schedule import Schedule, ScheduleError, parse_overrides
from .settings_values import SettingsError
from .settings_values import int_value as _int
from .settings_values import text_value as _text

#: R8.1: "at least 3 months after receipt"; a shorter setting refuses to start.
MIN_RETENTION_MONTHS = 3


@dataclass(frozen=True)
class LifecycleSettings:
    #: R8.7: which jobs ``vep serve`` schedules: None = all ("on"), () = none ("off", jobs
    #: only by ``vep run-job``), or the named ones ("outbox,sessions").
    scheduled_jobs: tuple[str, ...] | None = None
    #: Per-job schedule overrides, e.g. ``"retention=daily 03:10,outbox=every 5s"``.
    job_schedules: Mapping[str, Schedule] = field(default_factory=dict)
    #: R8.1: content kept this many months after receipt (at least 3).
    retention_months: int = MIN_RETENTION_MONTHS
    #: R2.3: days a temporary mailbox waits for the paper contract before it is suspended.
    temporary_mailbox_days: int = 8
    #: R8.3: days from the "no valid qualified certificate left" notice to closure.
    certificate_grace_days: int = 30
    #: R8.6: years after the contract ends until personal data are removed.
    personal_data_years: int = 10
    #: R8.2: monthly price per mailbox kind and the yearly e-invoice quota, in cents.
    price_single_cents: int = 500
    price_multi_cents: int = 1500
    price_einvoice_yearly_cents: int = 2400
    #: R8.2/R8.3: invoices due after 15 days; reminders and closure counted from the due date.
    invoice_due_days: int = 15
    reminder_days: tuple[int, ...] = (7, 21)
    closure_days_unpaid: int = 30
    #: R8.2: HMAC-SHA256 secret of the payment provider's webhook (None: webhook off).
    payment_webhook_secret: str | None = field(default=None, repr=False)
    payment_webhook_tolerance_seconds: int = 300
    #: R8.5: operators (person ids) who may confirm a wind-down; two different are needed.
    operators: tuple[str, ...] = ()
    #: R8.5: the supervisory ministry's address, told of a wind-down.
    ministry_email: str | None = None
    #: R8.5: how often (seconds) a node looks whether a wind-down became effective; once it
    #: is, its phase follows from the clock alone and nothing is read again.
    wind_down_check_seconds: int = 5


def _which_jobs(key: str, value: Any) -> tuple[str, ...] | None:
    if isinstance(value, bool):
        return None if value else ()
    text = str(value).strip().lower()
    if text in {"on", "true", "yes", "1", "all"}:
        return None
    if text in {"off", "false", "no", "0", "none"}:
        return ()
    return _names(key, value)


def _schedules(key: str, value: Any) -> dict[str, Schedule]:
    try:
        if isinstance(value, Mapping):
            return {str(k): Schedule.parse(str(v)) for k, v in value.items()}
        return parse_overrides(str(value))
    except ScheduleError as exc:
        raise SettingsError(key, str(exc)) from None


def _retention(key: str, value: Any) -> int:
    months = _int(key, value)
    if months < MIN_RETENTION_MONTHS:
        raise SettingsError(
            key, f"R8.1 keeps deliveries at least {MIN_RETENTION_MONTHS} months after receipt"
        )
    return months


def _days(key: str, value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    days = tuple(_int(key, item, 1) for item in items if str(item).strip())
    if list(days) != sorted(set(days)):
        raise SettingsError(key, "days must be increasing and distinct")
    return days


def _names(key: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _secret(key: str, value: Any) -> str:
    text = str(value)
    if len(text) < 16:
        raise SettingsError(key, "must be at least 16 characters")
    return text


#: key → (field, parser)
PARSERS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "scheduler": ("scheduled_jobs", lambda k, v: _which_jobs(k, v)),
    "job_schedules": ("job_schedules", _schedules),
    "retention_months": ("retention_months", _retention),
    "temporary_mailbox_days": ("temporary_mailbox_days", lambda k, v: _int(k, v, 1)),
    "certificate_grace_days": ("certificate_grace_days", lambda k, v: _int(k, v, 1)),
    "personal_data_years": ("personal_data_years", lambda k, v: _int(k, v, 1)),
    "price_single_cents": ("price_single_cents", _int),
    "price_multi_cents": ("price_multi_cents", _int),
    "price_einvoice_yearly_cents": ("price_einvoice_yearly_cents", _int),
    "invoice_due_days": ("invoice_due_days", lambda k, v: _int(k, v, 1)),
    "reminder_days": ("reminder_days", _days),
    "closure_days_unpaid": ("closure_days_unpaid", lambda k, v: _int(k, v, 1)),
    "payment_webhook_secret": ("payment_webhook_secret", _secret),
    "payment_webhook_tolerance_seconds": (
        "payment_webhook_tolerance_seconds",
        lambda k, v: _int(k, v, 1),
    ),
    "operators": ("operators", _names),
    "ministry_email": ("ministry_email", _text),
    "wind_down_check_seconds": ("wind_down_check_seconds", _int),
}


def build(values: Mapping[str, Any]) -> LifecycleSettings:
    return LifecycleSettings(**values)
