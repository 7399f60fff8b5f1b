"""A batch's progress: job counts, a per-step histogram, percent done, elapsed time and an ETA.

Cheap enough to poll every few seconds: four queries (the batch row, jobs GROUP BY status,
steps GROUP BY step and status, the restaurants' average duration), five while no restaurant
has completed (the steps' average duration). The histogram, and that average, read every step
row of the batch, so their cost grows with it (bench/README.md has figures at 10,000
restaurants).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from regbatch.db.batches import get_batch
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep
from regbatch.db.types import utcnow
from regbatch.plugins import current_registry, graph_from_record
from regbatch.services.batches import parse_uuid
from regbatch.statuses import (
    BATCH_FINISHED,
    JOB_FINISHED,
    BatchStatus,
    ExecutionMode,
    JobStatus,
    RequestedAction,
    StepStatus,
)
from regbatch.steps import critical_path_length

EtaMethod = Literal["finished", "restaurant_average", "step_average"]


class StepProgress(BaseModel):
    """How the batch's restaurants stand on one of its steps."""

    step_number: int
    step_key: str
    name: str
    counts: dict[str, int]
    """Every step status, with 0 for those no restaurant is in."""


class ProgressView(BaseModel):
    """Where a batch stands now, and when it should end."""

    batch_id: uuid.UUID
    name: str
    status: BatchStatus
    execution_mode: ExecutionMode
    concurrency: int
    requested_action: RequestedAction | None
    pause_reason: str | None
    total: int
    finished: int
    """Jobs that ended: completed, failed, cancelled or skipped."""
    percent: float
    jobs: dict[str, int]
    """Jobs by status, every status present (0 when none)."""
    steps: list[StepProgress]
    started_at: datetime | None
    completed_at: datetime | None
    elapsed_seconds: float | None
    eta_seconds: float | None
    """Seconds until the batch should end; null when there is nothing to estimate from."""
    eta_method: EtaMethod | None
    eta_samples: int
    """How many completed restaurants (or steps) the estimate averages."""


def batch_progress(batch_id: str | uuid.UUID, organisation_id: uuid.UUID | None) -> ProgressView:
    """The batch's progress; NotFoundError when it is not in `organisation_id`.

    The ETA, for a batch that has not ended:

    * `restaurant_average`: when restaurants of this batch completed, the average wall time of
      one (started_at to completed_at) times the waves still to run, a wave being as many
      restaurants as run at once (1 in sequential mode, else the batch's concurrency, at most
      the restaurants left);
    * `step_average`: else, when steps of this batch completed (not carried over from another
      batch), their average duration times the length of the step graph's critical path
      (4 steps: account -> restaurant -> menu -> option sets) stands for one restaurant;
    * null: else (nothing ran yet). A finished batch has ETA 0 (`finished`).

    Restaurants already under way count as whole ones, so the ETA errs long, and time spent
    paused counts into a restaurant's wall time.
    """
    bid = parse_uuid(batch_id, "batch_id")
    with session_scope() as session:
        return progress_of(session, get_batch(session, bid, organisation_id))


def progress_of(session: Session, batch: Batch) -> ProgressView:
    """The progress of a batch whose row the caller has read, in the caller's transaction
    (three aggregate queries, four while no restaurant has completed)."""
    bid = batch.id
    jobs = _job_counts(session, bid)
    steps = _step_histogram(session, bid, batch.step_graph)
    averages = _averages(session, bid)
    total = batch.total_restaurants
    finished = sum(jobs[s] for s in JOB_FINISHED)
    eta, method, samples = _eta(batch, total - finished, averages)
    return ProgressView(
        batch_id=batch.id,
        name=batch.name,
        status=batch.status,
        execution_mode=batch.execution_mode,
        concurrency=batch.concurrency,
        requested_action=batch.requested_action,
        pause_reason=batch.pause_reason,
        total=total,
        finished=finished,
        percent=round(100.0 * finished / total, 1) if total else 0.0,
        jobs=jobs,
        steps=steps,
        started_at=batch.started_at,
        completed_at=batch.completed_at,
        elapsed_seconds=_elapsed(batch),
        eta_seconds=eta,
        eta_method=method,
        eta_samples=samples,
    )


def _job_counts(session: Session, batch_id: uuid.UUID) -> dict[str, int]:
    rows = session.execute(
        select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
    )
    found = {status: int(n) for status, n in rows}
    return {str(s): found.get(s, 0) for s in JobStatus}


def _step_histogram(
    session: Session, batch_id: uuid.UUID, record: dict[str, Any] | None
) -> list[StepProgress]:
    rows = session.execute(
        select(JobStep.step_number, JobStep.status, func.count())
        .join(Job, Job.id == JobStep.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(JobStep.step_number, JobStep.status)
    )
    found: dict[int, dict[str, int]] = {}
    for number, status, n in rows:
        found.setdefault(number, {})[status] = int(n)
    graph = graph_from_record(record, current_registry())  # with its plugins' extra steps
    return [
        StepProgress(
            step_number=spec.number,
            step_key=spec.key,
            name=spec.name,
            counts={str(s): found.get(spec.number, {}).get(s, 0) for s in StepStatus},
        )
        for spec in graph.steps
    ]


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


def _averages(session: Session, batch_id: uuid.UUID) -> tuple[float | None, int, float | None, int]:
    """(average restaurant seconds, restaurants, average step ms, steps) of this batch; the
    steps' average (a scan of every step of the batch) only when no restaurant completed, since
    the ETA takes the restaurants' first."""
    avg_r, n_r = session.execute(
        select(func.avg(_seconds(session, Job.started_at, Job.completed_at)), func.count()).where(
            Job.batch_id == batch_id,
            Job.status == JobStatus.COMPLETED,
            Job.started_at.is_not(None),
            Job.completed_at.is_not(None),
        )
    ).one()
    if avg_r is not None and n_r:
        return float(avg_r), int(n_r), None, 0
    avg_s, n_s = session.execute(
        select(func.avg(JobStep.duration_ms), func.count())
        .join(Job, Job.id == JobStep.job_id)
        .where(
            Job.batch_id == batch_id,
            JobStep.status == StepStatus.COMPLETED,
            JobStep.duration_ms.is_not(None),
            JobStep.carried_over.is_(False),
        )
    ).one()
    return None, int(n_r), float(avg_s) if avg_s is not None else None, int(n_s)


def _eta(
    batch: Batch, remaining: int, averages: tuple[float | None, int, float | None, int]
) -> tuple[float | None, EtaMethod | None, int]:
    if batch.status in BATCH_FINISHED or (remaining <= 0 and batch.status != BatchStatus.DRAFT):
        return 0.0, "finished", 0
    avg_restaurant_s, restaurants, avg_step_ms, steps = averages
    at_once = 1 if batch.execution_mode == ExecutionMode.SEQUENTIAL else batch.concurrency
    waves = math.ceil(remaining / max(1, min(at_once, remaining))) if remaining > 0 else 0
    if avg_restaurant_s is not None and restaurants:
        return round(waves * avg_restaurant_s, 1), "restaurant_average", restaurants
    if avg_step_ms is not None and steps:
        per_restaurant_s = avg_step_ms / 1000.0 * critical_path_length()
        return round(waves * per_restaurant_s, 1), "step_average", steps
    return None, None, 0


def _elapsed(batch: Batch) -> float | None:
    if batch.started_at is None:
        return None
    if batch.status == BatchStatus.PAUSED and batch.paused_at is not None:
        end = batch.paused_at
    else:
        end = batch.completed_at or utcnow()
    return round(max(0.0, (end - batch.started_at).total_seconds()), 3)
