"""The SQL ledger (the production `regbatch.ledger.Ledger`) and how flows and tasks reach it.

Each call is one transaction on a small thread pool, so the event loop that drives Prefect's
async flows and tasks never blocks on the database. Every write states the runner's lease
(db/fencing.py). A dropped connection or a database that is briefly down is not an outcome of
the work: the transaction is retried with backoff for as long as the runner's lease lasts, then
LedgerUnavailableError stops the runner and the next owner resumes the batch (the data
functions are safe to run again).

Whether the batch's users asked for a pause or a cancel is read by every fenced transaction
(db/fencing.py); `requested_action` answers from the latest such read of this process when it is
at most `SIGHTING_FRESH_S` old, which the step outcome just written almost always is, and reads
in a transaction of its own otherwise. Nothing is weaker for it: a step's start is refused in
its own transaction once a request is recorded, and a refused start is itself a fresh sighting.

`ledger()` is the ledger of this process; tests put another in its place with `use_ledger`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from regbatch.db import lifecycle, overview
from regbatch.db import runner as runs  # db/runner.py: the runner's queue, dispatches, settling
from regbatch.db import steps as ledger_rows  # db/steps.py: the step rows, fenced
from regbatch.db.batches import batch_report
from regbatch.db.engine import session_scope
from regbatch.db.fencing import Held, Sighting, sighting
from regbatch.errors import LedgerUnavailableError
from regbatch.lease import Lease
from regbatch.ledger import (
    Completed,
    Failed,
    JobPlan,
    JobRef,
    JobSettled,
    Ledger,
    Outcome,
    Retrying,
    RunStart,
    Skip,
    StepInputs,
)
from regbatch.reporting import TABLE_ROWS_MAX
from regbatch.settings import get_settings
from regbatch.statuses import BatchStatus, JobStatus, RequestedAction
from regbatch.views import BatchReport, BatchView

T = TypeVar("T")
log = logging.getLogger(__name__)

# Few threads: every transaction is short and never waits for this process's other work, so
# four keep the writes flowing beside a slow read (the table's report) or a lock wait, and fewer
# threads contend less for the GIL. The runner of a 200-restaurant batch (25 at once, 1 s steps)
# spent 38-40 s of CPU with 1-6 threads against 41 s with 24 (bench/README, "third round").
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="regbatch-db")
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 2.0

# How old the latest fenced read of a batch may be to answer `requested_action` in its place.
SIGHTING_FRESH_S = 0.25
_SIGHTINGS: dict[uuid.UUID, Sighting] = {}
_FORGOTTEN_AT: dict[uuid.UUID, float] = {}  # no sighting read before this time is kept
_SIGHTINGS_LOCK = threading.Lock()


def _remember(seen: Sighting | None) -> None:
    """Keep the latest sighting of each batch (transactions end in any order on the threads),
    unless it was read before the batch's sightings were last forgotten."""
    if seen is None:
        return
    batch_id = seen.lease.batch_id
    with _SIGHTINGS_LOCK:
        if seen.at < _FORGOTTEN_AT.get(batch_id, float("-inf")):
            return
        kept = _SIGHTINGS.get(batch_id)
        if kept is None or kept.at <= seen.at:
            _SIGHTINGS[batch_id] = seen


def recent_hold(lease: Lease) -> Held | None:
    """What a fenced transaction of this lease read at most SIGHTING_FRESH_S ago, else None."""
    seen = _SIGHTINGS.get(lease.batch_id)
    if seen is None or seen.lease != lease or time.monotonic() - seen.at > SIGHTING_FRESH_S:
        return None
    return seen.held


def forget_sightings(batch_id: uuid.UUID) -> None:
    """The runner changed the batch's request itself: drop what was read before now, including
    a read still in flight on another thread."""
    with _SIGHTINGS_LOCK:
        _SIGHTINGS.pop(batch_id, None)
        _FORGOTTEN_AT[batch_id] = time.monotonic()


def _drop_sightings(batch_id: uuid.UUID) -> None:
    """The run ended: nothing of the batch is kept (the next run holds another lease)."""
    with _SIGHTINGS_LOCK:
        _SIGHTINGS.pop(batch_id, None)
        _FORGOTTEN_AT.pop(batch_id, None)


def _in_transaction(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with session_scope() as session:
        try:
            return fn(session, *args, **kwargs)
        finally:
            _remember(sighting(session))


def is_transient_database_error(error: BaseException) -> bool:
    """A connection that dropped, a server restarting, a deadlock: worth running again."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


async def transact(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(session, *args, **kwargs)` in one transaction on a database thread.

    Transient database errors are retried with backoff for up to the lease's length; past it,
    LedgerUnavailableError.
    """
    loop = asyncio.get_running_loop()
    budget = get_settings().lease_seconds
    deadline = loop.time() + budget
    delay = _FIRST_BACKOFF_S
    while True:
        try:
            return await loop.run_in_executor(
                _EXECUTOR, partial(_in_transaction, fn, *args, **kwargs)
            )
        except DBAPIError as exc:
            if not is_transient_database_error(exc):
                raise
            if loop.time() + delay > deadline:
                raise LedgerUnavailableError(
                    f"the database could not be written for {budget:g} s (the runner's lease; "
                    f"last error: {type(exc.orig or exc).__name__}); this runner stops and the "
                    "next one resumes the batch once its lease has expired: check that the "
                    "database named by REGBATCH_DATABASE_URL is up"
                ) from None
            log.warning(
                "database error in %s (%s); trying again in %.2f s",
                getattr(fn, "__name__", "a ledger write"),
                type(exc.orig or exc).__name__,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)


class SqlLedger:
    """The ledger in PostgreSQL (or the embedded SQLite file): see the module docstring."""

    async def stalled_batches(self, organisation: str | None = None) -> list[uuid.UUID]:
        return await transact(lifecycle.stalled_batches, organisation=organisation)

    async def previous_run(self, batch_id: uuid.UUID) -> tuple[BatchStatus, uuid.UUID | None]:
        return await transact(runs.previous_run, batch_id)

    async def begin_run(
        self,
        batch_id: uuid.UUID,
        owner: str,
        actor: str,
        flow_run_id: uuid.UUID | None,
        cancelled_by: str | None = None,
    ) -> RunStart:
        seconds = get_settings().lease_seconds
        return await transact(
            lifecycle.begin_run, batch_id, owner, seconds, actor, flow_run_id, cancelled_by
        )

    async def renew_lease(self, lease: Lease) -> bool:
        return await transact(lifecycle.renew_lease, lease, get_settings().lease_seconds)

    async def release_lease(self, lease: Lease) -> None:
        try:
            await transact(lifecycle.release_lease, lease)
        finally:
            _drop_sightings(lease.batch_id)

    async def batch_view(self, batch_id: uuid.UUID) -> BatchView:
        """The batch's own row (no jobs)."""
        return await transact(overview.batch_view, batch_id, None)

    async def batch_report(self, batch_id: uuid.UUID) -> BatchReport:
        """The batch as its Prefect artifacts show it (db.batches.batch_report)."""
        return await transact(batch_report, batch_id, TABLE_ROWS_MAX)

    async def unfinished_jobs(self, batch_id: uuid.UUID) -> list[JobRef]:
        return await transact(runs.job_refs, batch_id, True)

    async def requested_action(self, lease: Lease) -> RequestedAction | None:
        """The batch's request as a fenced read of this process saw it at most SIGHTING_FRESH_S
        ago, else as read now (LeaseLostError if the lease is gone; a recent read does not
        raise it: the next write does)."""
        held = recent_hold(lease)
        if held is not None:
            return held.requested_action
        return await transact(ledger_rows.requested_action, lease)

    # The runner's own requests: what was seen before them is forgotten, so the next read of the
    # request is the database's.
    async def request_pause(self, lease: Lease, reason: str) -> None:
        try:
            await transact(runs.request_pause, lease, reason)
        finally:
            forget_sightings(lease.batch_id)

    async def request_cancel(self, lease: Lease, actor: str) -> None:
        try:
            await transact(runs.request_cancel, lease, actor)
        finally:
            forget_sightings(lease.batch_id)

    async def mark_dispatched(self, lease: Lease, job_id: uuid.UUID) -> None:
        await transact(runs.mark_dispatched, lease, job_id)

    async def remember_flow_run(
        self, lease: Lease, job_id: uuid.UUID, flow_run_id: uuid.UUID
    ) -> None:
        await transact(runs.remember_flow_run, lease, job_id, flow_run_id)

    async def settle_job(self, lease: Lease, job_id: uuid.UUID, may_trip: bool) -> JobSettled:
        settled = await transact(runs.settle_job, lease, job_id, may_trip)
        if settled.breaker_reason is None:
            return settled
        # The common case reads only; the rare trip takes the batch in a transaction of its own.
        try:
            reason = await transact(runs.trip_breaker, lease)
        finally:
            forget_sightings(lease.batch_id)
        return JobSettled(settled.status, settled.finished, reason)

    async def finish_run(self, lease: Lease) -> BatchReport:
        def finish(session: Any) -> BatchReport:
            batch = lifecycle.finish_run(session, lease)
            return batch_report(session, batch.id, TABLE_ROWS_MAX)

        return await transact(finish)

    async def begin_job(self, lease: Lease, job_id: uuid.UUID) -> JobPlan:
        return await transact(ledger_rows.begin_job, lease, job_id)

    async def record_skips(self, lease: Lease, job_id: uuid.UUID, skips: list[Skip]) -> None:
        await transact(ledger_rows.record_skipped, lease, job_id, skips)

    async def finish_job(self, lease: Lease, job_id: uuid.UUID) -> JobStatus:
        return await transact(ledger_rows.finish_job, lease, job_id)

    async def hold_job(self, lease: Lease, job_id: uuid.UUID) -> None:
        await transact(ledger_rows.hold_job, lease, job_id)

    async def cancel_job(self, lease: Lease, job_id: uuid.UUID) -> bool:
        return await transact(ledger_rows.cancel_job, lease, job_id)

    async def start_attempt(self, lease: Lease, job_id: uuid.UUID, key: str) -> StepInputs:
        return await transact(ledger_rows.start_attempt, lease, job_id, key)

    async def record_outcome(
        self, lease: Lease, job_id: uuid.UUID, key: str, outcome: Outcome
    ) -> None:
        if isinstance(outcome, Completed):
            await transact(ledger_rows.record_completed, lease, job_id, key, outcome.result)
        elif isinstance(outcome, Retrying):
            await transact(ledger_rows.record_retrying, lease, job_id, key, outcome.error)
        elif isinstance(outcome, Failed):
            await transact(ledger_rows.record_failed, lease, job_id, key, outcome.error)


_current: Ledger = SqlLedger()


def ledger() -> Ledger:
    """The ledger flows and tasks of this process record to."""
    return _current


@contextmanager
def use_ledger(replacement: Ledger) -> Iterator[Ledger]:
    """Record to `replacement` inside the block (the orchestration unit tests' in-memory one)."""
    global _current
    previous, _current = _current, replacement
    try:
        yield replacement
    finally:
        _current = previous
