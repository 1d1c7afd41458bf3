"""What a job is: a name, the rule it serves, a default schedule and its work (R8.7).

The work must be idempotent and resumable: it claims rows (``FOR UPDATE SKIP LOCKED``) and
commits each item on its own, so a run killed in the middle leaves every finished item
finished and every unfinished one untouched, and the next run does the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .schedule import Schedule

if TYPE_CHECKING:
    from ..services.container import Services


@dataclass(frozen=True)
class JobContext:
    services: Services
    #: The moment every rule of the run is judged at: a scheduled run's slot (its due
    #: time, e.g. 01:05:00 exactly), else the injected clock's time at its start. A slot
    #: makes day counts exact — judged at the run's start, milliseconds of jitter between
    #: the run that set a date (an invoice's due date) and the one judging it put a
    #: "30 days" just short and moved a closure to day 31. Never later than the start.
    now: datetime
    #: Call after each item is committed; the runner records the count in ``job_runs``.
    done: Callable[[int], Awaitable[None]]


Work = Callable[[JobContext], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    name: str
    #: The requirement the job serves, e.g. "R8.1" (shown by ``vep jobs``).
    rule: str
    summary: str
    schedule: Schedule
    work: Work
    #: False for a polling job (the outbox): it runs whenever fired, without the one-run-
    #: per-slot rule (its work is claimed row by row anyway), and a run that found nothing
    #: to do leaves no row.
    once_per_slot: bool = True
