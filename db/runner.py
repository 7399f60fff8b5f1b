"""What a batch runner reads and writes beyond jobs and steps: its jobs' queue, dispatches,
distributed runs, the settling of a finished job. Data functions: they take a session and never
commit; every write states the runner's lease (db/fencing.py)."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from regbatch.db import lifecycle
from regbatch.db.batches import get_batch
from regbatch.db.fencing import LockMode, hold
from regbatch.db.models import Batch, Job, Restaurant
from regbatch.errors import NotFoundError
from regbatch.lease import Lease
from regbatch.ledger import JobRef, JobSettled
from regbatch.statuses import JOB_FINISHED, BatchStatus, JobStatus


def previous_run(session: Session, batch_id: uuid.UUID) -> tuple[BatchStatus, uuid.UUID | None]:
    """(status, flow run id) of the batch, read before deciding how to take it over."""
    batch = get_batch(session, batch_id)
    return BatchStatus(batch.status), batch.flow_run_id


def job_refs(session: Session, batch_id: uuid.UUID, unfinished_only: bool) -> list[JobRef]:
    """The batch's jobs as a dispatcher needs them, in the batch's order."""
    query = (
        select(Job.id, Job.position, Job.status, Restaurant.name, Job.flow_run_id)
        .join(Restaurant, Restaurant.id == Job.restaurant_id)
        .where(Job.batch_id == batch_id)
        .order_by(Job.position)
    )
    if unfinished_only:
        query = query.where(Job.status.not_in(list(JOB_FINISHED)))
    return [
        JobRef(job_id, position, JobStatus(status), name, flow_run_id)
        for job_id, position, status, name, flow_run_id in session.execute(query)
    ]


def mark_dispatched(session: Session, lease: Lease, job_id: uuid.UUID) -> None:
    """Count one more dispatch of the job."""
    hold(session, lease)
    session.execute(
        update(Job).where(Job.id == job_id).values(dispatch_attempts=Job.dispatch_attempts + 1)
    )


def remember_flow_run(
    session: Session, lease: Lease, job_id: uuid.UUID, flow_run_id: uuid.UUID
) -> None:
    """The flow run that runs the job elsewhere (distributed mode), for takeovers and cancel."""
    hold(session, lease)
    session.execute(update(Job).where(Job.id == job_id).values(flow_run_id=flow_run_id))


def settle_job(session: Session, lease: Lease, job_id: uuid.UUID, may_trip: bool) -> JobSettled:
    """The job's status, the batch's finished count and (if `may_trip`) whether the breaker
    should trip (read only: `trip_breaker` acts on it). Both from the batch's counters, in one
    read of its row: O(1) whatever the batch's size."""
    hold(session, lease)
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status is None:
        raise NotFoundError(f"job {job_id} does not exist")
    if status not in JOB_FINISHED:
        return JobSettled(JobStatus(status), 0, None)
    row = session.execute(
        select(
            Batch.completed_restaurants + Batch.failed_restaurants + Batch.cancelled_restaurants,
            *lifecycle.BREAKER_COLUMNS,
        ).where(Batch.id == lease.batch_id)
    ).one()
    verdict = lifecycle.verdict_of(row[1:]) if may_trip else None
    return JobSettled(JobStatus(status), int(row[0]), verdict.reason if verdict else None)


def trip_breaker(session: Session, lease: Lease) -> str | None:
    """Trip the breaker if it still should, in a transaction of its own (exclusive)."""
    hold(session, lease, LockMode.BATCH)
    return lifecycle.trip_breaker(session, lease.batch_id)


def request_pause(session: Session, lease: Lease, reason: str) -> None:
    """The runner asks its own batch to pause (it cannot go on), with the reason."""
    lifecycle.request_pause_for(session, lease, reason)


def request_cancel(session: Session, lease: Lease, actor: str) -> None:
    """Cancel the runner's own batch at its next step boundary, on `actor`'s behalf."""
    hold(session, lease, LockMode.BATCH)
    lifecycle.request_cancel(session, lease.batch_id, actor)
