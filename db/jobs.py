"""Job status changes: validated, with the batch's counters moved in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, bindparam, null, select, update
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


_JOBS = cast(Table, Job.__table__)
_JOB_FOR_CHANGE = (
    select(_JOBS.c.status, _JOBS.c.restaurant_id, _JOBS.c.started_at, _JOBS.c.completed_at)
    .where(_JOBS.c.id == bindparam("p_job"))
    .with_for_update()
)
# A job as the runner's writes read it (db/steps.py): what names it, and its status.
JOB_ROW: Select[Any] = select(
    _JOBS.c.id, _JOBS.c.batch_id, _JOBS.c.organisation_id, _JOBS.c.restaurant_id, _JOBS.c.status
).where(_JOBS.c.id == bindparam("p_job"))
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


class JobKey(Protocol):
    """What names a job and its batch: a Job, or a JOB_ROW."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def batch_id(self) -> uuid.UUID: ...


def set_job_status(
    session: Session,
    job: JobKey,
    status: JobStatus,
    *,
    error_message: str | None = None,
    error_details: dict[str, Any] | None = None,
) -> None:
    """Move `job` to `status` (validated) and move its batch's counters: the batch's counters
    lock first, then the job's row, read again under its own lock. Core statements on the
    session's connection (the ORM's load, change and flush of the row cost about twice as much);
    a Job object this session holds is not refreshed."""
    connection = session.connection()
    lock_batch(session, job.batch_id)
    row = connection.execute(_JOB_FOR_CHANGE, {"p_job": job.id}).one_or_none()
    if row is None:
        raise NotFoundError(f"job {job.id} does not exist")
    check_transition("job", row.status, status, f"job {job.id}")
    now = utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == JobStatus.IN_PROGRESS:
        values.update(started_at=row.started_at or now, completed_at=None)
        values.update(error_message=None, error_details=null())  # SQL NULL, not JSON null
    if status in JOB_FINISHED:
        values.update(completed_at=now, current_step=None)
    if status == JobStatus.FAILED:
        details = null() if error_details is None else error_details
        values.update(error_message=error_message, error_details=details)
    connection.execute(update(_JOBS).where(_JOBS.c.id == job.id).values(**values))
    registration = _REGISTRATION_STATUS.get(status)
    if registration is not None:
        connection.execute(
            _RESTAURANT_STATUS,
            {"p_restaurant": row.restaurant_id, "p_status": registration, "p_now": now},
        )
    move_counters(
        session,
        job.batch_id,
        row.status,
        status,
        was_finished_at=row.completed_at,
        finished_at=values.get("completed_at", row.completed_at),
    )
