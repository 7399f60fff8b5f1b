"""A batch's lifecycle: starting a run (with its lease), pause, resume, cancel, and finishing.

Users' requests (pause, cancel) are stored on the batch; the runner honours them at step
boundaries. A running batch holds a lease that its runner renews; a batch `in_progress` whose
lease expired is stalled, and the next runner takes it over. Every start and takeover gives the
lease a new fencing token (db/fencing.py), so the previous owner can no longer write. A takeover
never resumes what an operator stopped: a pending cancel or pause request is carried out instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.batch_rules import BreakerPolicy, breaker_reason, breaker_trips, final_status
from regbatch.db.batches import get_batch, job_counts, recompute_counters
from regbatch.db.fencing import LockMode, hold
from regbatch.db.models import Batch, Job, JobStep, OperationLog
from regbatch.db.oplog import append_log
from regbatch.db.organisations import find_organisation
from regbatch.db.types import utcnow
from regbatch.errors import ConflictError, LeaseHeldError
from regbatch.lease import Lease
from regbatch.ledger import RunStart
from regbatch.statuses import (
    BATCH_FINISHED,
    STEP_ACTIVE,
    BatchStatus,
    JobStatus,
    RequestedAction,
    StepStatus,
    allowed_from,
    check_transition,
)

RUNNABLE = (BatchStatus.DRAFT, BatchStatus.PENDING, BatchStatus.PAUSED, BatchStatus.IN_PROGRESS)


def _log(
    session: Session, batch: Batch, operation: Operation, actor: str, **details: object
) -> None:
    append_log(
        session,
        organisation_id=batch.organisation_id,
        batch_id=batch.id,
        operation=operation,
        actor=actor,
        details=details,
    )


def _lease_live(batch: Batch, now: datetime) -> bool:
    return batch.lease_expires_at is not None and batch.lease_expires_at > now


def begin_run(
    session: Session,
    batch_id: uuid.UUID,
    owner: str,
    lease_seconds: float,
    actor: str = "system",
    flow_run_id: uuid.UUID | None = None,
    cancelled_by: str | None = None,
) -> RunStart:
    """Put the batch in progress under `owner`'s new lease, or refuse with the reason.

    Allowed from draft, pending and paused, and from in_progress when the previous runner's
    lease has expired (a runner that died or froze: this one takes over, with a new fencing
    token). A takeover carries out a cancel or pause the previous runner had been asked for,
    and so does `cancelled_by` (the previous run was cancelled in Prefect): then nothing runs.
    """
    batch = get_batch(session, batch_id, lock=True)
    now = utcnow()
    _check_runnable(batch, owner, now)
    previous_owner, previous_run = batch.lease_owner, batch.flow_run_id
    if batch.status == BatchStatus.IN_PROGRESS:
        stopped = _carry_out_request(session, batch, cancelled_by)
        if stopped is not None:
            return RunStart(None, stopped, previous_owner, previous_run)
        _log_takeover(session, batch, owner, actor)
    else:
        _start(session, batch, owner, actor, now)
        previous_owner = previous_run = None
    lease = _grant_lease(session, batch, owner, lease_seconds, now, flow_run_id)
    return RunStart(lease, BatchStatus.IN_PROGRESS, previous_owner, previous_run)


def _check_runnable(batch: Batch, owner: str, now: datetime) -> None:
    """Refuse a finished batch, and one in progress whose runner's lease is live (not ours)."""
    if batch.status not in RUNNABLE:
        raise ConflictError(
            f"batch {batch.id} is {batch.status!r}; only draft, pending, paused "
            "or stalled batches can run (use retry-failed for failed restaurants)"
        )
    if (
        batch.status == BatchStatus.IN_PROGRESS
        and _lease_live(batch, now)
        and batch.lease_owner != owner
    ):
        raise LeaseHeldError(
            f"batch {batch.id} is being run by {batch.lease_owner} (lease until "
            f"{batch.lease_expires_at:%H:%M:%S} UTC); two runners never run one batch: wait "
            "for it, or let its lease expire if that runner is gone"
        )


def _log_takeover(session: Session, batch: Batch, owner: str, actor: str) -> None:
    """The stalled batch changes hands: the log names both owners and both fencing tokens."""
    _log(
        session,
        batch,
        Operation.LEASE_TAKEN_OVER,
        actor,
        previous_owner=batch.lease_owner,
        previous_token=batch.lease_token,
        new_owner=owner,
        new_token=batch.lease_token + 1,
    )


def _start(session: Session, batch: Batch, owner: str, actor: str, now: datetime) -> None:
    """A draft, pending or paused batch goes in progress (a paused one is resumed)."""
    check_transition("batch", batch.status, BatchStatus.IN_PROGRESS, f"batch {batch.id}")
    resumed = batch.status == BatchStatus.PAUSED
    batch.status = BatchStatus.IN_PROGRESS
    batch.started_at = batch.started_at or now
    if resumed or batch.breaker_window_start is None:
        _open_breaker_window(batch, now)
    operation = Operation.BATCH_RESUMED if resumed else Operation.BATCH_STARTED
    _log(session, batch, operation, actor, owner=owner)


def _grant_lease(
    session: Session,
    batch: Batch,
    owner: str,
    lease_seconds: float,
    now: datetime,
    flow_run_id: uuid.UUID | None,
) -> Lease:
    """`owner`'s lease, with the next fencing token: every earlier owner's writes now fail."""
    batch.lease_owner = owner
    batch.lease_token += 1
    batch.lease_expires_at = now + timedelta(seconds=lease_seconds)
    batch.error_message = None
    batch.flow_run_id = flow_run_id or batch.flow_run_id
    session.flush()
    return Lease(batch_id=batch.id, owner=owner, token=batch.lease_token)


def _carry_out_request(
    session: Session, batch: Batch, cancelled_by: str | None
) -> BatchStatus | None:
    """At a takeover: end the batch as its operator asked, if they did; else None (run it)."""
    if cancelled_by is not None:
        _log(session, batch, Operation.BATCH_CANCEL_REQUESTED, cancelled_by)
        return BatchStatus(cancel_now(session, batch.id, cancelled_by).status)
    if batch.requested_action == RequestedAction.CANCEL:
        return BatchStatus(cancel_now(session, batch.id, "system:recovery").status)
    if batch.requested_action == RequestedAction.PAUSE:
        hold_unfinished_jobs(session, batch.id, "system:recovery")
        reason = batch.pause_reason or BatchStatus.PAUSED.value
        return BatchStatus(pause_now(session, batch.id, reason, "system:recovery").status)
    return None


def hold_unfinished_jobs(session: Session, batch_id: uuid.UUID, actor: str) -> None:
    """Jobs a vanished runner left in progress go back to pending, their active steps too."""
    running = select(Job.id).where(Job.batch_id == batch_id, Job.status == JobStatus.IN_PROGRESS)
    job_ids = list(session.scalars(running))
    if not job_ids:
        return
    active_steps = STEP_ACTIVE & allowed_from("step", StepStatus.PENDING)
    session.execute(
        update(JobStep)
        .where(JobStep.job_id.in_(job_ids), JobStep.status.in_(sorted(active_steps)))
        .values(status=StepStatus.PENDING, updated_at=utcnow())
    )
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status.in_(sorted(allowed_from("job", JobStatus.PENDING))))
        .values(status=JobStatus.PENDING, updated_at=utcnow())
    )
    batch = get_batch(session, batch_id)
    for job_id in job_ids:
        append_log(
            session,
            organisation_id=batch.organisation_id,
            batch_id=batch_id,
            job_id=job_id,
            operation=Operation.JOB_PAUSED,
            actor=actor,
        )
    recompute_counters(session, batch_id)


def renew_lease(session: Session, lease: Lease, lease_seconds: float) -> bool:
    """Extend the lease; False when it is no longer this runner's (taken over, ended)."""
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == lease.batch_id,
            Batch.lease_owner == lease.owner,
            Batch.lease_token == lease.token,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_lease(session: Session, lease: Lease) -> None:
    session.execute(
        update(Batch)
        .where(
            Batch.id == lease.batch_id,
            Batch.lease_owner == lease.owner,
            Batch.lease_token == lease.token,
        )
        .values(lease_owner=None, lease_expires_at=None)
    )


def request_pause(
    session: Session, batch_id: uuid.UUID, actor: str, organisation_id: uuid.UUID | None = None
) -> Batch:
    """Ask the running batch to pause at its next step boundary."""
    batch = get_batch(session, batch_id, organisation_id, lock=True)
    if batch.status != BatchStatus.IN_PROGRESS:
        raise ConflictError(
            f"batch {batch_id} is {batch.status!r}; only a batch in progress can be paused"
        )
    if batch.requested_action is None:
        batch.requested_action = RequestedAction.PAUSE
        batch.pause_reason = f"paused by {actor}"
        _log(session, batch, Operation.BATCH_PAUSE_REQUESTED, actor)
    return batch


def pause_now(session: Session, batch_id: uuid.UUID, reason: str, actor: str) -> Batch:
    """The runner stopped at a step boundary: the batch is paused, nothing runs until resumed."""
    batch = get_batch(session, batch_id, lock=True)
    check_transition("batch", batch.status, BatchStatus.PAUSED, f"batch {batch_id}")
    batch.status = BatchStatus.PAUSED
    batch.paused_at = utcnow()
    batch.pause_reason = reason
    batch.requested_action = None
    batch.lease_owner = batch.lease_expires_at = None
    _log(session, batch, Operation.BATCH_PAUSED, actor, reason=reason)
    return batch


def resume(
    session: Session, batch_id: uuid.UUID, actor: str, organisation_id: uuid.UUID | None = None
) -> Batch:
    """A paused batch becomes pending (ready for a runner); a pending pause request is dropped."""
    batch = get_batch(session, batch_id, organisation_id, lock=True)
    if batch.status == BatchStatus.IN_PROGRESS and batch.requested_action == RequestedAction.PAUSE:
        batch.requested_action = None
        batch.pause_reason = None
        _log(session, batch, Operation.BATCH_RESUMED, actor, note="pause request withdrawn")
        return batch
    if batch.status != BatchStatus.PAUSED:
        raise ConflictError(
            f"batch {batch_id} is {batch.status!r}; only a paused batch can be resumed"
        )
    check_transition("batch", batch.status, BatchStatus.PENDING, f"batch {batch_id}")
    batch.status = BatchStatus.PENDING
    batch.pause_reason = None
    _open_breaker_window(batch, utcnow())
    _log(session, batch, Operation.BATCH_RESUMED, actor)
    return batch


def request_cancel(
    session: Session, batch_id: uuid.UUID, actor: str, organisation_id: uuid.UUID | None = None
) -> Batch:
    """Cancel: at once when nothing runs it, else at the runner's next step boundary."""
    batch = get_batch(session, batch_id, organisation_id, lock=True)
    if batch.status in BATCH_FINISHED:
        raise ConflictError(
            f"batch {batch_id} is already {batch.status!r}; there is nothing to cancel"
        )
    running = batch.status == BatchStatus.IN_PROGRESS and _lease_live(batch, utcnow())
    if running:
        batch.requested_action = RequestedAction.CANCEL
        _log(session, batch, Operation.BATCH_CANCEL_REQUESTED, actor)
        return batch
    return cancel_now(session, batch_id, actor)


def cancel_now(session: Session, batch_id: uuid.UUID, actor: str) -> Batch:
    """End the batch cancelled: every unfinished step and job becomes cancelled."""
    batch = get_batch(session, batch_id, lock=True)
    check_transition("batch", batch.status, BatchStatus.CANCELLED, f"batch {batch_id}")
    now = utcnow()
    # Unfinished means: the rule lets it become cancelled (pending or in progress).
    cancellable_jobs = sorted(allowed_from("job", JobStatus.CANCELLED))
    unfinished = select(Job.id).where(Job.batch_id == batch_id, Job.status.in_(cancellable_jobs))
    cancelled_jobs = list(session.scalars(unfinished.order_by(Job.position)))
    session.execute(
        update(JobStep)
        .where(
            JobStep.job_id.in_(unfinished),
            JobStep.status.in_(sorted(allowed_from("step", StepStatus.CANCELLED))),
        )
        .values(status=StepStatus.CANCELLED, completed_at=now)
    )
    session.execute(
        update(Job)
        .where(Job.id.in_(unfinished), Job.status.in_(cancellable_jobs))
        .values(status=JobStatus.CANCELLED, completed_at=now, current_step=None)
    )
    for job_id in cancelled_jobs:  # each job's transition is in the log, with its actor
        append_log(
            session,
            organisation_id=batch.organisation_id,
            batch_id=batch.id,
            job_id=job_id,
            operation=Operation.JOB_CANCELLED,
            actor=actor,
        )
    recompute_counters(session, batch_id)
    batch.status = BatchStatus.CANCELLED
    batch.cancelled_at = batch.completed_at = now
    batch.requested_action = None
    batch.lease_owner = batch.lease_expires_at = None
    _log(session, batch, Operation.BATCH_CANCELLED, actor)
    session.flush()
    session.refresh(batch)
    return batch


def finish_run(session: Session, lease: Lease) -> Batch:
    """The runner is done dispatching: the batch ends (completed or failed), paused or cancelled.

    A batch whose jobs are not all finished stays runnable: it is paused with the reason when a
    pause was asked (by a user or the breaker), cancelled when a cancel was asked.
    """
    hold(session, lease, LockMode.BATCH)
    batch_id = lease.batch_id
    batch = get_batch(session, batch_id, lock=True)
    session.refresh(batch)
    if batch.requested_action == RequestedAction.CANCEL:
        return cancel_now(
            session, batch_id, _requester(session, batch, Operation.BATCH_CANCEL_REQUESTED)
        )
    counts = job_counts(session, batch_id)
    if counts.unfinished == 0:
        recompute_counters(session, batch_id)  # the final figures, counted from the job rows
        status = final_status(counts)
        check_transition("batch", batch.status, status, f"batch {batch_id}")
        batch.status = status
        batch.completed_at = utcnow()
        batch.requested_action = None
        batch.lease_owner = batch.lease_expires_at = None
        operation = {
            BatchStatus.COMPLETED: Operation.BATCH_COMPLETED,
            BatchStatus.FAILED: Operation.BATCH_FAILED,
            BatchStatus.CANCELLED: Operation.BATCH_CANCELLED,
        }[status]
        _log(
            session,
            batch,
            operation,
            "system",
            completed=counts.completed + counts.skipped,
            failed=counts.failed,
            total=counts.total,
        )
        return batch
    reason = batch.pause_reason or BatchStatus.PAUSED.value
    requester = _requester(
        session, batch, Operation.BATCH_PAUSE_REQUESTED, Operation.BREAKER_TRIPPED
    )
    return pause_now(session, batch_id, reason, requester)


def request_pause_for(session: Session, lease: Lease, reason: str) -> None:
    """The runner asks its own batch to pause (it cannot go on), with the reason."""
    hold(session, lease, LockMode.BATCH)
    batch = request_pause(session, lease.batch_id, "system")
    batch.pause_reason = reason


def cancel_from_orchestrator(session: Session, batch_id: uuid.UUID, actor: str) -> Batch:
    """The batch's flow run was cancelled in Prefect (UI or API): the batch is cancelled now.

    Whoever runs it is fenced off at once (its lease ends); what already finished stays.
    """
    batch = get_batch(session, batch_id, lock=True)
    if batch.status in BATCH_FINISHED:
        return batch
    if batch.requested_action != RequestedAction.CANCEL:
        _log(session, batch, Operation.BATCH_CANCEL_REQUESTED, actor)
    return cancel_now(session, batch_id, actor)


def _requester(session: Session, batch: Batch, *operations: Operation) -> str:
    """Who asked for the pause or cancel being carried out (the log's latest such request)."""
    actor = session.scalar(
        select(OperationLog.actor)
        .where(OperationLog.batch_id == batch.id, OperationLog.operation.in_(operations))
        .order_by(OperationLog.id.desc())
        .limit(1)
    )
    return actor or "system"


@dataclass(frozen=True)
class BreakerVerdict:
    reason: str
    failed: int
    finished: int


def _open_breaker_window(batch: Batch, now: datetime) -> None:
    """The breaker judges the jobs that finish from now on (a start, or a resume)."""
    batch.breaker_window_start = now
    batch.breaker_window_finished = batch.breaker_window_failed = 0


# What the breaker judges, from the batch's row: its policy and its window's counters (O(1)).
BREAKER_COLUMNS = (
    Batch.breaker_threshold,
    Batch.breaker_min_finished,
    Batch.breaker_window_failed,
    Batch.breaker_window_finished,
)


def breaker_verdict(session: Session, batch_id: uuid.UUID) -> BreakerVerdict | None:
    """Whether too many of the jobs finished since the batch last started or resumed failed
    (read only: `trip_breaker` acts on it). Read by a query of its own, not from a Batch this
    session may have loaded before."""
    return verdict_of(session.execute(select(*BREAKER_COLUMNS).where(Batch.id == batch_id)).one())


def verdict_of(values: Sequence[Any]) -> BreakerVerdict | None:
    """The breaker's verdict on the values of BREAKER_COLUMNS, in their order."""
    threshold, min_finished, failed, finished = values
    policy = BreakerPolicy(threshold=float(threshold), min_finished=min_finished)
    if not breaker_trips(failed, finished, policy):
        return None
    return BreakerVerdict(breaker_reason(failed, finished, policy), failed, finished)


def trip_breaker(session: Session, batch_id: uuid.UUID) -> str | None:
    """Trip the breaker if it still should: the batch is asked to pause with the reason."""
    batch = get_batch(session, batch_id, lock=True)
    verdict = breaker_verdict(session, batch_id)
    if verdict is None or batch.requested_action is not None:
        return None
    batch.requested_action = RequestedAction.PAUSE
    batch.pause_reason = verdict.reason
    _log(
        session,
        batch,
        Operation.BREAKER_TRIPPED,
        "breaker",
        reason=verdict.reason,
        failed=verdict.failed,
        finished=verdict.finished,
    )
    return verdict.reason


def stalled_batches(
    session: Session, now: datetime | None = None, organisation: str | None = None
) -> list[uuid.UUID]:
    """Batches in progress whose runner's lease has expired (their runner is gone), oldest
    first; only those of the organisation (its name or id) when one is given: NotFoundError
    when there is no such organisation."""
    now = now or utcnow()
    query = (
        select(Batch.id)
        .where(
            Batch.status == BatchStatus.IN_PROGRESS,
            or_(Batch.lease_expires_at.is_(None), Batch.lease_expires_at < now),
        )
        .order_by(Batch.created_at)
    )
    if organisation is not None:
        query = query.where(Batch.organisation_id == find_organisation(session, organisation).id)
    return list(session.scalars(query))
