"""R9.1: :func:`server.store.audit.check_chain`, the one walk of the hash chain that the
database check (``vep verify-audit``) and the exported ``audit.jsonl`` check share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from server.store.audit import GENESIS, AuditEvent, ChainReport, check_chain, record_hash


def chain(n: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        at = datetime(2026, 11, 22, 8, 0, seq, tzinfo=UTC)
        details = {"n": seq, "note": "žš"}
        digest = record_hash(prev, seq, at, f"p-{seq}", "x", "success", details)
        events.append(AuditEvent(seq, at, f"p-{seq}", "x", "success", details, prev, digest))
        prev = digest
    return events


def test_r9_1_an_intact_chain_reports_its_records_and_head() -> None:
    events = chain(4)
    assert check_chain(events) == ChainReport(4, True, head=events[-1].hash)
    assert check_chain([]) == ChainReport(0, True, head=GENESIS)


def test_r9_1_a_chain_checked_in_batches_is_the_same_walk() -> None:
    events = chain(5)
    first = check_chain(events[:2])
    assert check_chain(events[2:], after=first) == check_chain(events)
    broken = check_chain(events[1:])  # record 1 missing
    assert check_chain(events[2:], after=broken) is broken


def _without_2(e: list[AuditEvent]) -> list[AuditEvent]:
    return [e[0], *e[2:]]


def _actor_of_4_changed(e: list[AuditEvent]) -> list[AuditEvent]:
    return [*e[:3], dataclasses.replace(e[3], actor="mallory"), e[4]]


def _prev_of_2_replaced(e: list[AuditEvent]) -> list[AuditEvent]:
    return [e[0], dataclasses.replace(e[1], prev_hash=GENESIS), *e[2:]]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "problem"),
    [
        (_without_2, 2, "record missing"),
        (_actor_of_4_changed, 4, "record changed"),
        (_prev_of_2_replaced, 2, "prev_hash does not match"),
    ],
)
def test_r9_1_the_first_broken_record_is_named(
    tamper: Callable[[list[AuditEvent]], list[AuditEvent]], bad_seq: int, problem: str
) -> None:
    events = chain(5)
    report = check_chain(tamper(events))
    assert (report.ok, report.first_bad_seq, report.problem) == (False, bad_seq, problem)
    assert report.records == bad_seq - 1
    assert report.head == events[bad_seq - 2].hash
