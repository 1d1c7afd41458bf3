"""Group commit of submissions (R5.1, R9.1; issue 4 benchmark).

Each submission is one statement (:func:`.submissions.insert_submission`), and a
statement outside a transaction pays for its own commit: a WAL flush, a round trip, and
the audit chain's head row locked until that flush. Under load most of those are paid for
side by side — many submissions, each waiting for its own flush of the same WAL.

:class:`SubmissionWriter` queues the submissions that arrive while a commit is under way
and writes them together: one ``executemany`` of the same statement, which asyncpg sends
as one pipeline in one transaction (atomic since asyncpg 0.22), so one commit and one WAL
flush. A lone submission still goes at once: nothing waits for a batch to fill, the batch
is simply what queued up during the previous commit (the way PostgreSQL groups WAL
flushes itself). Each caller is answered only after the transaction that holds its rows
committed, so a 201 still means durable. Measured: PostgreSQL's CPU per delivery 1.34 →
0.99 ms under the delivery benchmark.

Failures are not shared. A batch that PostgreSQL refused wrote nothing, so each of its
submissions is then written alone and gets its own answer (one whose recipient stopped
being active must not refuse the others). A batch whose outcome cannot be known — the
connection lost, the server shutting the session down, the writer cancelled — is not
retried, since it may have committed: every caller gets :class:`OutcomeUnknown`, and keeps
its files (the content sweep removes them if no row refers to them).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import asyncpg

from .audit import AuditHeadMissing

if TYPE_CHECKING:
    from .db import Connection

from .submissions import (
    INSERT_SUBMISSION,
    NewSubmission,
    RecipientInactive,
    SenderRefused,
    insert_submission,
)

#: At most this many submissions in one transaction: each waits for the whole batch, so
#: this bounds the wait (about half a millisecond of PostgreSQL time per submission).
MAX_BATCH = 32


class OutcomeUnknown(Exception):
    """The submission may or may not have committed (the cause is chained)."""


def definite(exc: asyncpg.PostgresError) -> bool:
    """Whether PostgreSQL's error means the transaction did not commit: an error it
    reported about the statement, not a lost connection (class 08), an operator's or
    crash shutdown (57P) or an internal error (XX), any of which may come after the
    commit record was written."""
    state = exc.sqlstate or ""
    return not (
        isinstance(exc, asyncpg.PostgresConnectionError)
        or state[:2] in {"08", "XX"}
        or state.startswith("57P")
    )


_Queued = tuple[NewSubmission, "asyncio.Future[None]"]


class SubmissionWriter:
    """Writes submissions through one connection at a time, grouped (see the module)."""

    def __init__(self, pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: deque[_Queued] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Submissions waiting for the commit under way to finish."""
        return len(self._queue)

    async def write(self, submission: NewSubmission) -> None:
        """Commit ``submission``; return when it is durable. Raises what
        :func:`.submissions.insert_submission` raises, or :class:`OutcomeUnknown`. Once
        called, cancelling the caller does not withdraw the submission: it is written with
        its batch, as a statement already sent would be."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((submission, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="submission-writer")
        # Not shielded: cancelling the caller cancels only this future, which the drain
        # task then skips; the submission stays in its batch.
        await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                size = min(self._max_batch, len(self._queue))
                await self._commit([self._queue.popleft() for _ in range(size)])
        finally:
            self._task = None
            while self._queue:  # only if the drain itself was cancelled: never sent
                _, future = self._queue.popleft()
                if not future.done():
                    future.set_exception(RuntimeError("the submission writer stopped"))

    async def _commit(self, batch: list[_Queued]) -> None:
        try:
            async with self._pool.acquire() as conn:
                outcomes = await self._write(conn, [submission for submission, _ in batch])
        except BaseException as exc:
            unknown = OutcomeUnknown("the submission's commit did not answer")
            unknown.__cause__ = exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(unknown)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)

    async def _write(self, conn: Connection, batch: list[NewSubmission]) -> list[Exception | None]:
        if len(batch) > 1:
            try:
                await conn.executemany(INSERT_SUBMISSION, [s.arguments() for s in batch])
                return [None] * len(batch)
            except asyncpg.PostgresError as exc:
                if not definite(exc):
                    raise
            # Refused, so nothing of it was written: each alone, for its own answer.
        return [await self._alone(conn, submission) for submission in batch]

    @staticmethod
    async def _alone(conn: Connection, submission: NewSubmission) -> Exception | None:
        try:
            await insert_submission(conn, submission)
        except (RecipientInactive, SenderRefused, AuditHeadMissing) as exc:
            return exc
        except asyncpg.PostgresError as exc:
            if not definite(exc):
                raise
            return exc
        return None


__all__ = ["MAX_BATCH", "OutcomeUnknown", "SubmissionWriter", "definite"]
