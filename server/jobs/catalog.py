"""Every scheduled job, with the rule it serves and its default schedule (R8.7).

Default times are UTC and spread over the night (R9.3: maintenance 18:00–06:00 Slovenian
time, which is UTC+1 in winter and UTC+2 in summer: so none after 04:00 UTC) so that the
daily jobs do not compete; settings may override any of them (``job_schedules``).
"""

from __future__ import annotations

from ..notify.worker import OutboxWorker
from .base import Job, JobContext
from .schedule import Schedule


async def _deemed_service(ctx: JobContext) -> int:
    return await ctx.services.acceptance.deemed_service(ctx.now)


async def _content_sweep(ctx: JobContext) -> int:
    report = await ctx.services.content_sweep.run(ctx.now)
    return len(report.removed) + report.partials_removed


async def _retention(ctx: JobContext) -> int:
    return await ctx.services.retention.purge_due(ctx.now, ctx.done)


async def _audit_seal(ctx: JobContext) -> int:
    sealer = ctx.services.audit_seal
    return 0 if sealer is None else await sealer.run(ctx.now, ctx.done)


async def _billing(ctx: JobContext) -> int:
    return await ctx.services.billing.run(ctx.now, ctx.done)


async def _temporary(ctx: JobContext) -> int:
    return await ctx.services.lifecycle.suspend_temporary(ctx.now, ctx.done)


async def _certificates(ctx: JobContext) -> int:
    return await ctx.services.lifecycle.check_certificates(ctx.now, ctx.done)


async def _post_termination(ctx: JobContext) -> int:
    return await ctx.services.lifecycle.end_readonly_access(ctx.now, ctx.done)


async def _personal_data(ctx: JobContext) -> int:
    return await ctx.services.lifecycle.remove_personal_data(ctx.now, ctx.done)


async def _wind_down(ctx: JobContext) -> int:
    return await ctx.services.wind_down.run(ctx.now, ctx.done)


async def _sessions(ctx: JobContext) -> int:
    return await ctx.services.sessions.sweep(ctx.now, ctx.done)


def catalog(outbox_worker: OutboxWorker | None, outbox_seconds: float = 2.0) -> dict[str, Job]:
    """The jobs of this process; ``outbox`` only where a notifier is configured."""
    jobs = [
        Job(
            "deemed-service",
            "R5.3",
            "return-receipt deliveries not accepted in 15 days are deemed served",
            Schedule.parse("daily 01:05"),
            _deemed_service,
        ),
        Job(
            "retention",
            "R8.1",
            "content purged after the retention period; a sealed disposition record each",
            Schedule.parse("daily 02:10"),
            _retention,
        ),
        Job(
            "content-sweep",
            "R5.5",
            "content files no committed row refers to are removed",
            Schedule.parse("daily 02:40"),
            _content_sweep,
        ),
        Job(
            "audit-seal",
            "R9.1",
            "the head of the audit chain sealed and time-stamped (removal is detected)",
            Schedule.parse("every 15m"),
            _audit_seal,
        ),
        Job(
            "billing",
            "R8.2, R8.3",
            "monthly invoices, reminders at 7 and 21 days, closure 30 days past due",
            Schedule.parse("daily 00:30"),
            _billing,
        ),
        Job(
            "temporary-mailboxes",
            "R2.3",
            "a temporary mailbox without a paper contract after 8 days is suspended",
            Schedule.parse("every 1h"),
            _temporary,
        ),
        Job(
            "certificates",
            "R8.3",
            "mailboxes without a valid qualified certificate are told, then closed",
            Schedule.parse("daily 03:20"),
            _certificates,
        ),
        Job(
            "post-termination",
            "R8.4",
            "read-only access after termination ends at its date",
            Schedule.parse("every 1h"),
            _post_termination,
        ),
        Job(
            "personal-data",
            "R8.6",
            "personal data removed 10 years after the contract ends",
            Schedule.parse("daily 03:50"),
            _personal_data,
        ),
        Job(
            "sessions",
            "R1.3",
            "sessions whose certificate is revoked or expired are ended",
            Schedule.parse("every 15m"),
            _sessions,
        ),
        Job(
            "wind-down",
            "R8.5",
            "in a wind-down: subscribers and the ministry told once; day 45 closes every mailbox",
            Schedule.parse("every 1h"),
            _wind_down,
        ),
    ]
    if outbox_worker is not None:
        worker = outbox_worker

        async def _outbox(ctx: JobContext) -> int:
            return await worker.drain()

        jobs.append(
            Job(
                "outbox",
                "R5.4",
                "queued e-mail notifications are sent, failures retried with backoff",
                Schedule(kind="every", seconds=max(0.01, outbox_seconds)),
                _outbox,
                once_per_slot=False,
            )
        )
    return {job.name: job for job in jobs}
