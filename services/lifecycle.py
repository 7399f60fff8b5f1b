"""Batch lifecycle operations for users (pause, resume, cancel, retry failed) and for runners
(begin, lease, breaker, finish). Each call is one transaction."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from regbatch.db import lifecycle
from regbatch.db.batches import batch_detail, get_batch, job_counts
from regbatch.db.engine import session_scope
from regbatch.db.fencing import LockMode, hold
from regbatch.db.models import Batch, Job
from regbatch.db.retries import RetryOutcome, create_retry_batch
from regbatch.errors import NotFoundError
from regbatch.lease import Lease
from regbatch.services.batches import parse_uuid
from regbatch.services.execution import transact
from regbatch.statuses import BATCH_FINISHED, JOB_FINISHED, JobStatus
from regbatch.views import BatchDetail


def runner_identity(flow_run_id: uuid.UUID | str | None = None) -> str:
    """Who holds a batch's lease: host, process and (if any) the Prefect flow run."""
    suffix = f":{str(flow_run_id)[:8]}" if flow_run_id else ""
    return f"{socket.gethostname()}:{os.getpid()}{suffix}"


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

    A batch cancelled now is announced to its webhooks before this returns (`_announce`).
    """
    with session_scope() as session:
        batch = lifecycle.request_cancel(
            session, parse_uuid(batch_id, "batch_id"), actor, organisation_id
        )
        detail = batch_detail(session, batch.id)
    if detail.status == "cancelled":  # nothing ran it, so nobody else will announce it
        _announce(detail.id)
    return detail


def _announce(batch_id: uuid.UUID) -> None:
    """Deliver the cancel to the batch's webhooks, each subscription at once, and wait.

    The caller waits for the slowest subscription's retries (none: no wait, no Prefect): a sync
    call can only return sooner by leaving the deliveries to another thread, which a CLI process
    would either wait for at exit anyway or kill with its pending retries. Errors are logged.
    """
    from regbatch.services.webhooks import announce_batch_outcome

    announce_batch_outcome(batch_id)


def retry_failed(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> RetryOutcome:
    """The linked batch of the failed restaurants: made now, or (`existed`) by an earlier call."""
    with session_scope() as session:
        return create_retry_batch(session, parse_uuid(batch_id, "batch_id"), actor, organisation_id)


def stalled_batches() -> list[uuid.UUID]:
    with session_scope() as session:
        return lifecycle.stalled_batches(session)


# --- for the runner (async: the batch flow calls these) -------------------------------------


async def begin_run(
    batch_id: uuid.UUID,
    owner: str,
    lease_seconds: float,
    actor: str,
    flow_run_id: uuid.UUID | None = None,
    cancelled_by: str | None = None,
) -> lifecycle.RunStart:
    return await transact(
        lifecycle.begin_run, batch_id, owner, lease_seconds, actor, flow_run_id, cancelled_by
    )


async def previous_run(batch_id: uuid.UUID) -> tuple[str, uuid.UUID | None]:
    """(status, flow run id) of the batch, read before deciding how to take it over."""

    def read(session: Session) -> tuple[str, uuid.UUID | None]:
        batch = get_batch(session, batch_id)
        return batch.status, batch.flow_run_id

    return await transact(read)


async def request_pause_for(lease: Lease, reason: str) -> None:
    """The runner asks its own batch to pause (it cannot go on), with the reason."""
    await transact(lifecycle.request_pause_for, lease, reason)


async def request_cancel_for(lease: Lease, actor: str) -> None:
    """Cancel the runner's own batch at its next step boundary, on `actor`'s behalf."""

    def write(session: Session) -> None:
        hold(session, lease, LockMode.BATCH)
        lifecycle.request_cancel(session, lease.batch_id, actor)

    await transact(write)


async def finish_run(lease: Lease) -> BatchDetail:
    def finish(session: Session) -> BatchDetail:
        batch = lifecycle.finish_run(session, lease)
        return batch_detail(session, batch.id)

    return await transact(finish)


@dataclass(frozen=True)
class JobSettled:
    """What the batch runner learns once a dispatched job's run ended."""

    status: JobStatus
    finished: int  # the batch's finished jobs, this one included
    breaker_reason: str | None  # set when this job's end tripped the breaker


async def settle_job(lease: Lease, job_id: uuid.UUID, may_trip: bool) -> JobSettled:
    """The job's status, the batch's finished count and (if `may_trip`) the breaker: a tripped
    breaker asks the batch to pause with its reason."""

    def settle(session: Session) -> JobSettled:
        hold(session, lease)
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None:
            raise NotFoundError(f"job {job_id} does not exist")
        if status not in JOB_FINISHED:
            return JobSettled(JobStatus(status), 0, None)
        finished = job_counts(session, lease.batch_id).finished
        verdict = lifecycle.breaker_verdict(session, lease.batch_id) if may_trip else None
        return JobSettled(JobStatus(status), finished, verdict.reason if verdict else None)

    def trip(session: Session) -> str | None:
        hold(session, lease, LockMode.BATCH)
        return lifecycle.trip_breaker(session, lease.batch_id)

    settled = await transact(settle)
    if settled.breaker_reason is None:
        return settled
    # The common case reads only; the rare trip takes the batch in a transaction of its own.
    return replace(settled, breaker_reason=await transact(trip))


def cancel_from_orchestrator(flow_run_id: uuid.UUID, actor: str) -> BatchDetail | None:
    """Cancel the batch whose flow run Prefect cancelled, and announce it to its webhooks;
    None when no unfinished batch has that run."""
    from regbatch.services.webhooks import deliver_batch_event

    with session_scope() as session:
        batch_id = session.scalar(
            select(Batch.id).where(
                Batch.flow_run_id == flow_run_id, Batch.status.not_in(list(BATCH_FINISHED))
            )
        )
        if batch_id is None:
            return None
        batch = lifecycle.cancel_from_orchestrator(session, batch_id, actor)
        detail = batch_detail(session, batch.id)
    deliver_batch_event(detail.id)  # nobody else will: the run that would have is gone
    return detail


def renew_lease(lease: Lease, lease_seconds: float) -> bool:
    with session_scope() as session:
        return lifecycle.renew_lease(session, lease, lease_seconds)


def release_lease(lease: Lease) -> None:
    with session_scope() as session:
        lifecycle.release_lease(session, lease)
