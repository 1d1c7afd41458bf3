"""Schedules (R8.7): the slot a run belongs to, at its edges; lifecycle settings refuse bad
values naming the key (R8.1: retention below 3 months does not start)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from server.jobs.catalog import catalog
from server.jobs.schedule import Schedule, ScheduleError, parse_overrides
from server.services.lifecycle import add_months, add_years
from server.settings import SettingsError, load

BASE = {"VEP_DATABASE_URL": "postgresql://app@/vep?host=/tmp/x"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "now", "slot", "next_run"),
    [
        ("daily 02:10", "2027-01-05 02:10:00", "2027-01-05 02:10:00", "2027-01-06 02:10:00"),
        ("daily 02:10", "2027-01-05 02:09:59", "2027-01-04 02:10:00", "2027-01-05 02:10:00"),
        ("every 15m", "2027-01-05 10:44:59", "2027-01-05 10:30:00", "2027-01-05 10:45:00"),
        ("every 15m", "2027-01-05 10:45:00", "2027-01-05 10:45:00", "2027-01-05 11:00:00"),
        ("every 0.5s", "2027-01-05 10:45:00.7", "2027-01-05 10:45:00.5", "2027-01-05 10:45:01"),
        ("monthly 1 00:30", "2027-03-01 00:29:59", "2027-02-01 00:30:00", "2027-03-01 00:30:00"),
        ("monthly 1 00:30", "2027-01-01 00:29:59", "2026-12-01 00:30:00", "2027-01-01 00:30:00"),
        ("monthly 28 23:00", "2027-12-28 23:00:00", "2027-12-28 23:00:00", "2028-01-28 23:00:00"),
    ],
)
def test_r8_7_slot_and_next_run_at_the_edges(spec: str, now: str, slot: str, next_run: str) -> None:
    schedule = Schedule.parse(spec)
    assert schedule.slot(at(now)) == at(slot)
    assert schedule.next_after(at(now)) == at(next_run)
    assert Schedule.parse(str(schedule)) == schedule


@pytest.mark.parametrize(
    "spec", ["hourly", "daily 24:00", "daily 12:60", "monthly 29 01:00", "every 0s", "every 5d"]
)
def test_r8_7_bad_schedules_are_refused(spec: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(spec)


def test_r8_7_overrides_name_the_job() -> None:
    found = parse_overrides("retention=daily 03:10, outbox=every 5s")
    assert found == {"retention": Schedule.parse("daily 03:10"), "outbox": Schedule("every", 5)}
    with pytest.raises(ScheduleError):
        parse_overrides("retention")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"VEP_RETENTION_MONTHS": "2"}, "VEP_RETENTION_MONTHS"),
        ({"VEP_RETENTION_MONTHS": "three"}, "VEP_RETENTION_MONTHS"),
        ({"VEP_JOB_SCHEDULES": "retention=sometimes"}, "VEP_JOB_SCHEDULES"),
        ({"VEP_REMINDER_DAYS": "21,7"}, "VEP_REMINDER_DAYS"),
        ({"VEP_PAYMENT_WEBHOOK_SECRET": "short"}, "VEP_PAYMENT_WEBHOOK_SECRET"),
        ({"VEP_TEMPORARY_MAILBOX_DAYS": "0"}, "VEP_TEMPORARY_MAILBOX_DAYS"),
    ],
)
def test_r8_lifecycle_settings_name_the_bad_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(None, {**BASE, **env})
    assert info.value.key == key


def test_r8_lifecycle_settings_parse() -> None:
    settings = load(
        'retention_months = 6\nscheduler = "outbox, sessions"\n',
        {**BASE, "VEP_REMINDER_DAYS": "5,10,20"},
    )
    assert settings.lifecycle.retention_months == 6
    assert settings.lifecycle.scheduled_jobs == ("outbox", "sessions")
    assert settings.lifecycle.reminder_days == (5, 10, 20)
    assert load(None, {**BASE, "VEP_SCHEDULER": "off"}).lifecycle.scheduled_jobs == ()
    assert load(None, BASE).lifecycle.scheduled_jobs is None  # all


def test_r8_calendar_months_clamp_to_the_month_end() -> None:
    assert add_months(at("2027-01-31 12:00:00"), 1) == at("2027-02-28 12:00:00")
    assert add_months(at("2027-11-30 00:00:00"), 3) == at("2028-02-29 00:00:00")
    assert add_months(at("2027-05-15 00:00:00"), -3) == at("2027-02-15 00:00:00")
    assert add_years(at("2028-02-29 00:00:00"), 10) == at("2038-02-28 00:00:00")


@pytest.mark.parametrize("offset", [1, 2])  # Ljubljana: CET in winter, CEST in summer
def test_r9_3_every_timed_default_runs_in_the_maintenance_window(offset: int) -> None:
    """R9.3: maintenance windows are 18:00–06:00 (Slovenian time); the daily and monthly
    jobs keep to them in winter and in summer (04:30 UTC was 06:30 in summer)."""
    for job in catalog(None).values():
        if job.schedule.kind == "every":
            continue
        utc = datetime(2026, 1, 1, job.schedule.hour, job.schedule.minute, tzinfo=UTC)
        local = (utc + timedelta(hours=offset)).time()
        assert local >= time(18) or local < time(6), (job.name, local)
