"""Retry failed: a new batch, linked to the original, holding only its failed restaurants.

Each new job carries over the outputs of its original's completed steps (and the steps skipped
by configuration) and starts with exactly the failed steps and the steps they blocked. It keeps
its original's idempotency root, so a step the platform did perform before it failed (a timeout
after the side effect) is answered as a replay, not performed twice.

Asking again is safe: a failed restaurant already held by a retry batch of the same original
(one not cancelled) is not retried a second time, and when every failed restaurant is held the
answer is the latest retry batch. Calls queue on the original's row lock, so ten at once still
make one retry batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, insert, select
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.batch_rules import RETRYABLE
from regbatch.db.batches import get_batch, lock_restaurants, unfinished_elsewhere
from regbatch.db.models import Batch, Job, JobStep, Restaurant
from regbatch.db.oplog import append_log
from regbatch.db.restaurants import registration_config
from regbatch.errors import ConflictError, InvalidInputError, Problem
from regbatch.planning import StepState, steps_to_rerun
from regbatch.statuses import BatchStatus, JobStatus, StepStatus


@dataclass(frozen=True)
class RetryOutcome:
    """A batch's retry batch, its status, and whether an earlier call had already made it."""

    batch_id: uuid.UUID
    status: BatchStatus
    existed: bool


def create_retry_batch(
    session: Session,
    batch_id: uuid.UUID,
    actor: str,
    organisation_id: uuid.UUID | None = None,
    job_ids: Sequence[uuid.UUID] | None = None,
) -> RetryOutcome:
    """The linked retry batch (draft) of the failed restaurants (those of `job_ids` only, when
    given) no earlier retry holds, or the latest retry batch when they are all held; the
    original only gains a log entry."""
    original = get_batch(session, batch_id, organisation_id, lock=True)
    failed = _failed_not_held(session, original.id)
    if job_ids is not None:
        failed = [row for row in failed if row[0].id in set(job_ids)]
    if not failed:
        latest = _latest_retry(session, original.id)
        if latest is not None:
            return RetryOutcome(latest.id, latest.status, existed=True)
    _refuse_unretryable(original, failed)
    _refuse_busy(session, original, [restaurant for _, restaurant in failed])
    steps_by_job = _steps_by_job(session, [job.id for job, _ in failed])
    configs = _retry_configs(original, failed)
    retry = _add_retry_batch(session, original, actor, len(failed))
    _add_retry_jobs(session, retry, failed, configs, steps_by_job)
    _log_retry_created(session, original, retry, actor)
    return RetryOutcome(retry.id, retry.status, existed=False)


def retry_of_job(session: Session, job_id: uuid.UUID) -> RetryOutcome | None:
    """The newest retry batch (not cancelled) already holding job `job_id`'s restaurant."""
    found = session.execute(
        select(Batch.id, Batch.status)
        .join(Job, Job.batch_id == Batch.id)
        .where(Job.retry_of_job_id == job_id, Batch.status != BatchStatus.CANCELLED)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(1)
    ).first()
    return RetryOutcome(found[0], BatchStatus(found[1]), existed=True) if found else None


def _refuse_unretryable(original: Batch, failed: list[Row[Job, Restaurant]]) -> None:
    """ConflictError unless the batch has stopped and has failed restaurants left to retry."""
    if original.status not in RETRYABLE:
        raise ConflictError(
            f"batch {original.id} is {original.status!r}; retry its failed "
            "restaurants once it has stopped (completed, failed, paused or "
            "cancelled)"
        )
    if not failed:
        raise ConflictError(f"batch {original.id} has no failed restaurants to retry")


def _steps_by_job(session: Session, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[JobStep]]:
    """The jobs' step rows, in step order."""
    steps = session.scalars(
        select(JobStep)
        .where(JobStep.job_id.in_(job_ids))
        .order_by(JobStep.job_id, JobStep.step_number)
    ).all()
    by_job: dict[uuid.UUID, list[JobStep]] = {}
    for row in steps:
        by_job.setdefault(row.job_id, []).append(row)
    return by_job


def _retry_configs(
    original: Batch, failed: list[Row[Job, Restaurant]]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Each failed job's configuration rebuilt from its restaurant as it is now, by job id;
    InvalidInputError listing every restaurant that no longer validates."""
    problems: list[Problem] = []
    configs: dict[uuid.UUID, dict[str, Any]] = {}
    for job, restaurant in failed:
        config, config_problems = registration_config(restaurant, original.settings)
        problems += config_problems
        if config is not None:
            configs[job.id] = config
    if problems:
        raise InvalidInputError("retry batch not created: fix these restaurants first", problems)
    return configs


def _add_retry_batch(session: Session, original: Batch, actor: str, restaurants: int) -> Batch:
    """The retry batch's row (draft), with the original's name, mode and breaker."""
    retry = Batch(
        organisation_id=original.organisation_id,
        name=f"{original.name} - Retry"[:200],
        execution_mode=original.execution_mode,
        concurrency=original.concurrency,
        status=BatchStatus.DRAFT,
        total_restaurants=restaurants,
        settings=original.settings,
        created_by=actor,
        retry_of_batch_id=original.id,
        breaker_threshold=original.breaker_threshold,
        breaker_min_finished=original.breaker_min_finished,
        step_graph=original.step_graph,  # the graph it was created with, whatever is installed now
    )
    session.add(retry)
    session.flush()
    return retry


def _add_retry_jobs(
    session: Session,
    retry: Batch,
    failed: list[Row[Job, Restaurant]],
    configs: dict[uuid.UUID, dict[str, Any]],
    steps_by_job: dict[uuid.UUID, list[JobStep]],
) -> None:
    """One job per failed job, keeping its idempotency root, with its steps carried over."""
    job_rows, step_rows = [], []
    for position, (job, _) in enumerate(failed):
        new_id = uuid.uuid4()
        job_rows.append(
            {
                "id": new_id,
                "organisation_id": job.organisation_id,
                "batch_id": retry.id,
                "restaurant_id": job.restaurant_id,
                "position": position,
                "status": JobStatus.PENDING,
                "execution_config": configs[job.id],
                "retry_of_job_id": job.id,
                "idempotency_root": job.idempotency_root,
                "dispatch_attempts": 0,
            }
        )
        step_rows += _carried_steps(steps_by_job[job.id], new_id)
    session.execute(insert(Job), job_rows)
    session.execute(insert(JobStep), step_rows)


def _log_retry_created(session: Session, original: Batch, retry: Batch, actor: str) -> None:
    """One entry in each batch's log: the original names its retry, the retry its original."""
    append_log(
        session,
        organisation_id=original.organisation_id,
        batch_id=original.id,
        operation=Operation.RETRY_BATCH_CREATED,
        actor=actor,
        details={"new_batch_id": str(retry.id), "restaurants": retry.total_restaurants},
    )
    append_log(
        session,
        organisation_id=original.organisation_id,
        batch_id=retry.id,
        operation=Operation.BATCH_CREATED,
        actor=actor,
        details={"restaurants": retry.total_restaurants, "retry_of_batch_id": str(original.id)},
    )


def _held_by_retries(original_id: uuid.UUID) -> Select[uuid.UUID]:
    """The restaurants in retry batches of `original_id` that were not cancelled."""
    return (
        select(Job.restaurant_id)
        .join(Batch, Batch.id == Job.batch_id)
        .where(Batch.retry_of_batch_id == original_id, Batch.status != BatchStatus.CANCELLED)
    )


def _failed_not_held(session: Session, original_id: uuid.UUID) -> list[Row[Job, Restaurant]]:
    return list(
        session.execute(
            select(Job, Restaurant)
            .join(Restaurant, Restaurant.id == Job.restaurant_id)
            .where(Job.batch_id == original_id, Job.status == JobStatus.FAILED)
            .where(Job.restaurant_id.not_in(_held_by_retries(original_id)))
            .order_by(Job.position)
        ).all()
    )


def _latest_retry(session: Session, original_id: uuid.UUID) -> Batch | None:
    """The newest retry batch of `original_id` that was not cancelled."""
    return session.scalar(
        select(Batch)
        .where(Batch.retry_of_batch_id == original_id, Batch.status != BatchStatus.CANCELLED)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(1)
    )


def _refuse_busy(session: Session, original: Batch, restaurants: list[Restaurant]) -> None:
    """ConflictError when a restaurant to retry has work left in another unfinished batch.

    The restaurants' row locks are held until the retry batch is written, as in create_batch.
    """
    ids = [r.id for r in restaurants]
    lock_restaurants(session, original.organisation_id, ids)
    busy = unfinished_elsewhere(session, ids)
    if not busy:
        return
    names = {r.id: r.name for r in restaurants}
    where = "; ".join(
        f"restaurant {names[rid]!r} ({rid}) is in unfinished batch {other} ({status})"
        for rid, other, status in busy
    )
    raise ConflictError(
        f"retry batch of batch {original.id} not created: {where}; a restaurant is in one "
        "unfinished batch at a time: wait for that batch to finish or cancel it, then retry again"
    )


def _carried_steps(rows: list[JobStep], new_job_id: uuid.UUID) -> list[dict[str, Any]]:
    keys = {r.step_number: r.step_key for r in rows}
    states = {
        r.step_key: StepState(
            StepStatus(r.status),
            r.result_data,
            keys.get(r.blocked_by_step) if r.blocked_by_step else None,
        )
        for r in rows
    }
    rerun = steps_to_rerun(states)
    result = []
    for row in rows:
        again = row.step_key in rerun
        carried = {
            "id": uuid.uuid4(),
            "organisation_id": row.organisation_id,
            "job_id": new_job_id,
            "step_number": row.step_number,
            "step_key": row.step_key,
            "status": StepStatus.PENDING if again else row.status,
            "attempts": 0 if again else row.attempts,
            "carried_over": not again,
            "handler": row.handler,
        }
        if not again:
            carried.update(
                result_data=row.result_data,
                started_at=row.started_at,
                completed_at=row.completed_at,
                duration_ms=row.duration_ms,
                skip_reason=row.skip_reason,
            )
        result.append(carried)
    return result
