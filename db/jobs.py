"""Job status changes: validated, with the batch's counters moved in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
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


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(
            f"job {job_id} does not exist; see the batch's jobs with `regbatch batch show BATCH_ID`"
        )
    return job


def set_job_status(
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    error_message: str | None = None,
    error_details: dict[str, Any] | None = None,
) -> Job:
    """Move a job to `status` (validated) and move its batch's counters under the lock."""
    batch_id = session.scalar(select(Job.batch_id).where(Job.id == job_id))
    if batch_id is None:
        raise NotFoundError(f"job {job_id} does not exist")
    lock_batch(session, batch_id)
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert job is not None
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
    if registration is not None:
        session.execute(
            update(Restaurant)
            .where(Restaurant.id == job.restaurant_id)
            .values(registration_status=registration, updated_at=now)
        )
    session.flush()
    move_counters(session, batch_id, previous, status)
    return job
