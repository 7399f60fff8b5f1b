"""Batch lifecycle operations for users: pause, resume, cancel, retry failed. Each call is one
transaction. (What runners do to a batch is regbatch/runner/ledger.py.)"""

from __future__ import annotations

import uuid

from regbatch.db import lifecycle
from regbatch.db.batch_pages import job_of
from regbatch.db.batches import batch_detail
from regbatch.db.engine import session_scope
from regbatch.db.retries import RetryOutcome, create_retry_batch, retry_of_job
from regbatch.errors import ConflictError
from regbatch.services.batches import parse_uuid
from regbatch.statuses import JobStatus
from regbatch.views import BatchDetail


def pause_batch(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> BatchDetail:
    """Ask a running batch to pause at its next step boundary."""
    with session_scope() as session:
        batch = lifecycle.request_pause(
            session, parse_uuid(batch_id, "batch_id"), actor, organisation_id
        )
        return batch_detail(session, batch.id)


def resume_batch(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> BatchDetail:
    """Make a paused batch runnable again (it continues from where it stopped when run)."""
    with session_scope() as session:
        batch = lifecycle.resume(session, parse_uuid(batch_id, "batch_id"), actor, organisation_id)
        return batch_detail(session, batch.id)


def cancel_batch(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> BatchDetail:
    """Cancel now if nothing runs the batch, else at its runner's next step boundary.

    A batch cancelled now is announced to its webhooks by the caller (regbatch/api/lifecycle.py):
    delivering them is a Prefect task's work, above this layer.
    """
    with session_scope() as session:
        batch = lifecycle.request_cancel(
            session, parse_uuid(batch_id, "batch_id"), actor, organisation_id
        )
        return batch_detail(session, batch.id)


def retry_failed(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> RetryOutcome:
    """The linked batch of the failed restaurants: made now, or (`existed`) by an earlier call."""
    with session_scope() as session:
        return create_retry_batch(session, parse_uuid(batch_id, "batch_id"), actor, organisation_id)


def retry_job(
    job_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> RetryOutcome:
    """A linked retry batch of one failed restaurant of a batch: its failed steps and those
    skipped because of them run again, its completed steps are carried over."""
    jid = parse_uuid(job_id, "job_id")
    with session_scope() as session:
        job = job_of(session, jid, organisation_id)
        if job.status != JobStatus.FAILED:
            raise ConflictError(
                f"job {jid} is {str(job.status)!r}; only a failed job's steps can be retried"
            )
        earlier = retry_of_job(session, jid)
        if earlier is not None:
            return earlier
        return create_retry_batch(session, job.batch_id, actor, organisation_id, job_ids=[jid])
