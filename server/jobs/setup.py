"""Build the job runner and the scheduler of a process (``vep serve``, ``vep run-job``)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from ..clock import Clock
from ..notify.notifier import Notifier, SmtpNotifier
from ..notify.worker import OutboxWorker
from ..services.container import Services
from ..settings import Settings, SettingsError
from .catalog import catalog
from .runner import JobRunner


def outbox_worker(
    settings: Settings, services: Services, notifier: Notifier | None
) -> OutboxWorker:
    return OutboxWorker(
        services.outbox,
        notifier
        or SmtpNotifier(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            settings.smtp_starttls,
            settings.smtp_timeout_seconds,
        ),
        services.clock,
        settings.smtp_sender,
        settings.outbox_max_attempts,
        keep_trying=timedelta(hours=settings.outbox_keep_trying_hours),
    )


def job_runner(
    settings: Settings,
    clock: Clock,
    services: Services,
    notifier: Notifier | None,
    lock_pool: asyncpg.Pool | None = None,
) -> JobRunner:
    jobs = catalog(outbox_worker(settings, services, notifier), settings.outbox_poll_seconds)
    unknown = sorted(set(settings.lifecycle.job_schedules) - set(jobs))
    if unknown:
        raise SettingsError("VEP_JOB_SCHEDULES", f"no such job: {', '.join(unknown)}")
    return JobRunner(
        services.pool,
        clock,
        jobs,
        settings.lifecycle.job_schedules,
        services,
        lock_pool=lock_pool,
    )


def scheduled_names(settings: Settings, runner: JobRunner) -> list[str]:
    """The jobs this process schedules (``VEP_SCHEDULER``: on, off or a list of names)."""
    wanted = settings.lifecycle.scheduled_jobs
    if wanted is None:
        return list(runner.jobs)
    unknown = sorted(set(wanted) - set(runner.jobs))
    if unknown:
        raise SettingsError("VEP_SCHEDULER", f"no such job: {', '.join(unknown)}")
    return [name for name in runner.jobs if name in wanted]
