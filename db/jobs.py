"""Job status changes: validated, with the batch's counters moved in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from regbatch.db.batches import lock_batch, move_counters
from regbatch.db.models import Job, Restaurant
from regbatch.db.types import utcnow
from regbatch.errors import NotFoundError
from regbatch.restaurant import RegistrationStatus
from regbatch.statuses import JOB_FINISHED, JobStatus, check_transition

# What a job's status means for its restaurant's registration status.
_REGISTRATION_STATUS = {
    JobStatus.IN_PROGRESS: RegistrationStatus.IN_PROGRESS,
    JobStatus.COMPLETED: RegistrationStatus.REGISTERED,
    JobStatus.FAILED: RegistrationStatus.FAILED,
}


_RESTAURANTS = cast(Table, Restaurant.__table__)
_RESTAURANT_STATUS = (
    update(_RESTAURANTS)
    .where(_RESTAURANTS.c.id == bindparam("p_restaurant"))
    .values(registration_status=bindparam("p_status"), updated_at=bindparam("p_now"))
)


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(
            f"job {job_id} does not exist; see the batch's jobs with `regbatch batch show BATCH_ID`"
        )
    return job


def set_job_status(
    session: Session,
    job: Job,
    status: JobStatus,
    *,
    error_message: str | None = None,
    error_details: dict[str, Any] | None = None,
) -> Job:
    """Move `job` (as its caller read it) to `status` (validated) and move its batch's counters;
    the batch's counters lock is taken first, then the job's row, read again under it."""
    job_id, batch_id = job.id, job.batch_id
    lock_batch(session, batch_id)
    locked = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise NotFoundError(f"job {job_id} does not exist")
    job = locked
    check_transition("job", job.status, status, f"job {job_id}")
    previous = job.status
    now = utcnow()
    job.status = status
    if status == JobStatus.IN_PROGRESS:
        job.started_at = job.started_at or now
        job.completed_at = None
        job.error_message, job.error_details = None, None
    if status in JOB_FINISHED:
        job.completed_at = now
        job.current_step = None
    if status == JobStatus.FAILED:
        job.error_message, job.error_details = error_message, error_details
    registration = _REGISTRATION_STATUS.get(status)
    if registration is not None:  # a Core statement, built once: the ORM's update costs double
        session.connection().execute(
            _RESTAURANT_STATUS,
            {"p_restaurant": job.restaurant_id, "p_status": registration, "p_now": now},
        )
    session.flush()
    move_counters(session, batch_id, previous, status)
    return job
