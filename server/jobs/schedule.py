"""When a job is due: ``every 30s``, ``daily 02:15``, ``monthly 1 03:00`` (UTC).

A schedule names *slots*: the moments a job is due. The scheduler fires on wall time
(APScheduler), but which slot a run belongs to is computed from the injected clock with
:meth:`Schedule.slot`, and ``job_runs`` holds at most one successful run per (job, slot):
that is what makes a job run once when several nodes fire it (R8.7), and what lets a node
that starts after downtime see that the current slot was missed and run it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smh])$")
_DAILY = re.compile(r"^daily\s+(\d{1,2}):(\d{2})$")
_MONTHLY = re.compile(r"^monthly\s+(\d{1,2})\s+(\d{1,2}):(\d{2})$")
_UNIT = {"s": 1, "m": 60, "h": 3600}


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    kind: Literal["every", "daily", "monthly"]
    seconds: float = 0  # every
    day: int = 1  # monthly (1..28: every month has it)
    hour: int = 0
    minute: int = 0

    @classmethod
    def parse(cls, text: str) -> Schedule:
        spec = " ".join(text.strip().lower().split())
        if match := _EVERY.match(spec):
            seconds = float(match.group(1)) * _UNIT[match.group(2)]
            if seconds < 0.01:
                raise ScheduleError(f"{text!r}: the interval must be at least 0.01 s")
            return cls("every", seconds=seconds)
        if match := _DAILY.match(spec):
            return cls("daily", hour=_hour(match.group(1), text), minute=_minute(match, 2, text))
        if match := _MONTHLY.match(spec):
            day = int(match.group(1))
            if not 1 <= day <= 28:
                raise ScheduleError(f"{text!r}: the day of the month must be 1..28")
            return cls(
                "monthly", day=day, hour=_hour(match.group(2), text), minute=_minute(match, 3, text)
            )
        raise ScheduleError(
            f"{text!r}: expected 'every N[s|m|h]', 'daily HH:MM' or 'monthly D HH:MM'"
        )

    def __str__(self) -> str:
        if self.kind == "every":
            for unit, size in (("h", 3600), ("m", 60)):
                if self.seconds >= size and self.seconds % size == 0:
                    return f"every {self.seconds / size:g}{unit}"
            return f"every {self.seconds:g}s"
        if self.kind == "daily":
            return f"daily {self.hour:02d}:{self.minute:02d}"
        return f"monthly {self.day} {self.hour:02d}:{self.minute:02d}"

    def slot(self, now: datetime) -> datetime:
        """The latest moment at or before ``now`` at which the job was due."""
        now = now.astimezone(UTC)
        if self.kind == "every":
            # in microseconds, so that a fractional interval has exact slots
            step = round(self.seconds * 1_000_000)
            elapsed = (now - _EPOCH) // timedelta(microseconds=1)
            return _EPOCH + timedelta(microseconds=elapsed // step * step)
        if self.kind == "daily":
            today = now.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
            return today if today <= now else today - timedelta(days=1)
        this_month = now.replace(
            day=self.day, hour=self.hour, minute=self.minute, second=0, microsecond=0
        )
        if this_month <= now:
            return this_month
        year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
        return this_month.replace(year=year, month=month)

    def next_after(self, now: datetime) -> datetime:
        """The first moment after ``now`` at which the job is due."""
        current = self.slot(now)
        if self.kind == "every":
            return current + timedelta(seconds=self.seconds)
        if self.kind == "daily":
            return current + timedelta(days=1)
        year, month = (
            (current.year, current.month + 1) if current.month < 12 else (current.year + 1, 1)
        )
        return current.replace(year=year, month=month)

    def trigger(self) -> BaseTrigger:
        """The APScheduler trigger that fires at these slots (wall time, UTC)."""
        if self.kind == "every":
            return IntervalTrigger(seconds=self.seconds, start_date=_EPOCH, timezone=UTC)
        if self.kind == "daily":
            return CronTrigger(hour=self.hour, minute=self.minute, timezone=UTC)
        return CronTrigger(day=self.day, hour=self.hour, minute=self.minute, timezone=UTC)


def _hour(text: str, spec: str) -> int:
    hour = int(text)
    if hour > 23:
        raise ScheduleError(f"{spec!r}: hour must be 0..23")
    return hour


def _minute(match: re.Match[str], group: int, spec: str) -> int:
    minute = int(match.group(group))
    if minute > 59:
        raise ScheduleError(f"{spec!r}: minute must be 0..59")
    return minute


def parse_overrides(text: str) -> dict[str, Schedule]:
    """``"retention=daily 03:10, outbox=every 5s"`` → {name: Schedule} (settings)."""
    found: dict[str, Schedule] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, spec = item.partition("=")
        if not sep or not name.strip():
            raise ScheduleError(f"{item.strip()!r}: expected NAME=SCHEDULE")
        found[name.strip()] = Schedule.parse(spec)
    return found
