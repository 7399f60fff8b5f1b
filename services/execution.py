"""What flows and step tasks read and write while a job runs.

Each function runs one transaction in a worker thread, so the event loop that drives Prefect's
async flows and tasks never blocks on the database. Every write states the runner's lease (see
db/fencing.py). A dropped connection or a database that is briefly down is not an outcome of
the work: the transaction is retried with backoff for as long as the runner's lease lasts, then
LedgerUnavailableError stops the runner and the next owner resumes the batch.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from regbatch.db import steps as ledger
from regbatch.db.batches import batch_detail
from regbatch.db.engine import session_scope
from regbatch.db.fencing import hold
from regbatch.db.models import Job, Restaurant
from regbatch.db.steps import JobPlan, StepInputs
from regbatch.errors import LedgerUnavailableError
from regbatch.lease import Lease
from regbatch.settings import get_settings
from regbatch.statuses import JOB_FINISHED, JobStatus, RequestedAction
from regbatch.steps import StepKey
from regbatch.views import BatchDetail

T = TypeVar("T")
log = logging.getLogger(__name__)

# Enough threads for every step of a few dozen concurrent restaurants; each holds a connection
# for one short transaction only.
_EXECUTOR = ThreadPoolExecutor(max_workers=24, thread_name_prefix="regbatch-db")
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 2.0


def _in_transaction(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with session_scope() as session:
        return fn(session, *args, **kwargs)


def is_transient_database_error(error: BaseException) -> bool:
    """A connection that dropped, a server restarting, a deadlock: worth running again."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


async def transact(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(session, *args, **kwargs)` in one transaction on a database thread.

    Transient database errors are retried with backoff for up to the lease's length (the data
    functions are safe to run again); past it, LedgerUnavailableError.
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


async def begin_job(lease: Lease, job_id: uuid.UUID) -> JobPlan:
    return await transact(ledger.begin_job, lease, job_id)


async def load_plan(job_id: uuid.UUID) -> JobPlan:
    return await transact(ledger.load_plan, job_id)


async def start_attempt(lease: Lease, job_id: uuid.UUID, key: StepKey) -> StepInputs:
    return await transact(ledger.start_attempt, lease, job_id, key)


async def record_retrying(
    lease: Lease, job_id: uuid.UUID, key: StepKey, error: BaseException
) -> None:
    await transact(ledger.record_retrying, lease, job_id, key, error)


async def record_completed(
    lease: Lease, job_id: uuid.UUID, key: StepKey, result: dict[str, Any]
) -> None:
    await transact(ledger.record_completed, lease, job_id, key, result)


async def record_failed(
    lease: Lease, job_id: uuid.UUID, key: StepKey, error: BaseException
) -> bool:
    return await transact(ledger.record_failed, lease, job_id, key, error)


async def record_skipped(
    lease: Lease, job_id: uuid.UUID, skips: list[tuple[StepKey, str, StepKey | None]]
) -> None:
    """Record several skips (step, reason, blocking step) in one transaction."""
    await transact(ledger.record_skipped, lease, job_id, skips)


async def finish_job(lease: Lease, job_id: uuid.UUID) -> JobStatus:
    return await transact(ledger.finish_job, lease, job_id)


async def hold_job(lease: Lease, job_id: uuid.UUID) -> None:
    await transact(ledger.hold_job, lease, job_id)


async def cancel_job(lease: Lease, job_id: uuid.UUID) -> bool:
    return await transact(ledger.cancel_job, lease, job_id)


async def requested_action(lease: Lease) -> RequestedAction | None:
    """The pause or cancel asked of the batch, if any; LeaseLostError once it is not ours."""
    return await transact(ledger.requested_action, lease)


# Restaurant names the batch flow already read, so naming a subflow run does not block the
# event loop on the database (the name callable is synchronous). Bounded; names never change
# during a run.
_JOB_NAMES: dict[uuid.UUID, str] = {}
_JOB_NAMES_SIZE = 4096


def note_job_name(job_id: uuid.UUID, restaurant_name: str) -> None:
    if len(_JOB_NAMES) >= _JOB_NAMES_SIZE:
        _JOB_NAMES.pop(next(iter(_JOB_NAMES)))
    _JOB_NAMES[job_id] = restaurant_name


def restaurant_name_for_job(job_id: uuid.UUID) -> str:
    """The restaurant's name (used to name flow runs; reads the database unless noted)."""
    known = _JOB_NAMES.get(job_id)
    if known is not None:
        return known

    def read(session: Session) -> str:
        name = session.scalar(
            select(Restaurant.name)
            .join(Job, Job.restaurant_id == Restaurant.id)
            .where(Job.id == job_id)
        )
        return name or f"job {job_id}"

    return _in_transaction(read)


async def batch_detail_async(batch_id: uuid.UUID, with_results: bool = True) -> BatchDetail:
    return await transact(batch_detail, batch_id, with_results=with_results)


@dataclass(frozen=True)
class JobRef:
    """A job as the batch flow dispatches it."""

    id: uuid.UUID
    position: int
    status: str
    restaurant_name: str
    flow_run_id: uuid.UUID | None


def _job_refs(session: Session, batch_id: uuid.UUID, unfinished_only: bool) -> list[JobRef]:
    query = (
        select(Job.id, Job.position, Job.status, Restaurant.name, Job.flow_run_id)
        .join(Restaurant, Restaurant.id == Job.restaurant_id)
        .where(Job.batch_id == batch_id)
        .order_by(Job.position)
    )
    if unfinished_only:
        query = query.where(Job.status.not_in(list(JOB_FINISHED)))
    return [JobRef(*row) for row in session.execute(query)]


async def unfinished_jobs(batch_id: uuid.UUID) -> list[JobRef]:
    """The batch's jobs that still have work, in the batch's order."""
    return await transact(_job_refs, batch_id, True)


async def mark_dispatched(lease: Lease, job_id: uuid.UUID) -> None:
    """Count one more dispatch of the job."""

    def write(session: Session) -> None:
        hold(session, lease)
        session.execute(
            update(Job).where(Job.id == job_id).values(dispatch_attempts=Job.dispatch_attempts + 1)
        )

    await transact(write)


async def remember_flow_run(lease: Lease, job_id: uuid.UUID, flow_run_id: uuid.UUID) -> None:
    """The flow run that runs the job elsewhere (distributed mode), for takeovers and cancel."""

    def write(session: Session) -> None:
        hold(session, lease)
        session.execute(update(Job).where(Job.id == job_id).values(flow_run_id=flow_run_id))

    await transact(write)
