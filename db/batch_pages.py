"""Pages of batches for interfaces: where each batch is (its current step), a preview of its
restaurants, and a batch with one page of its jobs. Opaque cursors, stable under inserts: they
carry the last row's sort key, never an offset."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from regbatch.db.batches import batch_fields, get_batch, job_view, job_view_rows, step_views
from regbatch.db.models import Batch, Job, JobStep, Restaurant
from regbatch.errors import InvalidInputError, NotFoundError, Problem
from regbatch.plugins import current_registry, graph_from_record
from regbatch.statuses import STEP_ACTIVE, JobStatus, StepStatus
from regbatch.steps import StepGraph, current_step
from regbatch.views import BatchJobsPage, JobPreview, JobView

PREVIEW_JOBS = 10
JOBS_PAGE_MAX = 500


def encode_cursor(kind: str, fields: dict[str, Any]) -> str:
    """An opaque cursor of `kind` carrying `fields` (JSON values)."""
    raw = json.dumps({"k": kind, **fields}, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> dict[str, Any]:
    """The fields of a cursor made by encode_cursor(kind, ...); InvalidInputError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
        if isinstance(fields, dict) and fields.pop("k", None) == kind:
            return fields
    except (ValueError, UnicodeDecodeError):
        pass
    raise bad_cursor(cursor)


def bad_cursor(cursor: str) -> InvalidInputError:
    """The error of a cursor that is not the next_cursor of this list."""
    return InvalidInputError(
        "invalid cursor",
        [
            Problem(
                "cursor",
                f"{cursor[:80]!r} is not a cursor of this list in this order; pass the "
                "next_cursor value of the previous page exactly, or omit it",
            )
        ],
    )


def current_steps(session: Session, batch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each batch's current step: the lowest step one of its restaurants is running, else the
    lowest that failed; batches with neither are absent. One query on the steps' status index."""
    if not batch_ids:
        return {}
    number = JobStep.step_number
    rows = session.execute(
        select(
            Job.batch_id,
            func.min(case((JobStep.status.in_(list(STEP_ACTIVE)), number))),
            func.min(case((JobStep.status == StepStatus.FAILED, number))),
        )
        .join(Job, Job.id == JobStep.job_id)
        .where(
            Job.batch_id.in_(list(batch_ids)),
            JobStep.status.in_([*STEP_ACTIVE, StepStatus.FAILED]),
        )
        .group_by(Job.batch_id)
    )
    return {bid: active if active is not None else failed for bid, active, failed in rows}


def job_previews(
    session: Session, batch_ids: Sequence[uuid.UUID], per_batch: int = PREVIEW_JOBS
) -> dict[uuid.UUID, list[JobPreview]]:
    """The first `per_batch` restaurants of each batch, with their status and current step."""
    if not batch_ids:
        return {}
    ranked = (
        select(
            Job.id,
            Job.batch_id,
            Job.restaurant_id,
            Job.status,
            Job.position,
            func.row_number().over(partition_by=Job.batch_id, order_by=Job.position).label("rn"),
        )
        .where(Job.batch_id.in_(list(batch_ids)))
        .subquery()
    )
    jobs = session.execute(
        select(ranked, Restaurant.name, Restaurant.city)
        .join(Restaurant, Restaurant.id == ranked.c.restaurant_id)
        .where(ranked.c.rn <= per_batch)
        .order_by(ranked.c.batch_id, ranked.c.position)
    ).all()
    statuses = _step_statuses(session, [j.id for j in jobs])
    graphs = _graphs(session, batch_ids)
    found: dict[uuid.UUID, list[JobPreview]] = {bid: [] for bid in batch_ids}
    for j in jobs:
        steps = statuses.get(j.id)
        found[j.batch_id].append(
            JobPreview(
                job_id=j.id,
                restaurant_id=j.restaurant_id,
                name=j.name,
                city=j.city,
                status=j.status,
                current_step=current_step(steps, graphs.get(j.batch_id)) if steps else None,
            )
        )
    return found


def _graphs(session: Session, batch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, StepGraph]:
    """The step graphs of the batches that recorded one (plugins); the others use the twelve."""
    rows = session.execute(
        select(Batch.id, Batch.step_graph).where(
            Batch.id.in_(list(batch_ids)), Batch.step_graph.is_not(None)
        )
    )
    registry = current_registry()
    return {bid: graph_from_record(record, registry) for bid, record in rows if record}


def _step_statuses(
    session: Session, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[int, StepStatus]]:
    found: dict[uuid.UUID, dict[int, StepStatus]] = {}
    if not job_ids:
        return found
    rows = session.execute(
        select(JobStep.job_id, JobStep.step_number, JobStep.status).where(
            JobStep.job_id.in_(list(job_ids))
        )
    )
    for job_id, number, status in rows:
        found.setdefault(job_id, {})[number] = StepStatus(status)
    return found


def batch_jobs_page(
    session: Session,
    batch_id: uuid.UUID,
    organisation_id: uuid.UUID | None,
    *,
    limit: int = 100,
    cursor: str | None = None,
    with_results: bool = False,
) -> BatchJobsPage:
    """The batch with one page of its jobs (in the batch's order) and their steps, in four
    queries whatever the batch's size (none of them counts the batch's jobs); the steps'
    results only `with_results`."""
    if not 1 <= limit <= JOBS_PAGE_MAX:
        raise InvalidInputError(
            "invalid job page",
            [Problem("limit", f"{limit} is out of range; use 1 to {JOBS_PAGE_MAX}")],
        )
    after = -1
    if cursor:
        position = decode_cursor(cursor, f"jobs:{batch_id}").get("p")
        if not isinstance(position, int):
            raise bad_cursor(cursor)
        after = position
    batch = get_batch(session, batch_id, organisation_id)
    rows = session.execute(
        job_view_rows(batch_id).where(Job.position > after).order_by(Job.position).limit(limit + 1)
    ).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(f"jobs:{batch_id}", {"p": rows[-1].position})
    jobs = _job_views(session, batch, rows, with_results)
    fields = batch_fields(batch)
    fields["current_step"] = current_steps(session, [batch_id]).get(batch_id)
    return BatchJobsPage(
        **fields,
        jobs=jobs,
        jobs_total=batch.total_restaurants,  # a batch's jobs are made with it, one per restaurant
        next_cursor=next_cursor,
    )


def live_jobs_page(session: Session, batch_id: uuid.UUID, limit: int) -> BatchJobsPage:
    """The batch and at most `limit` of its restaurants, the ones worth watching while it runs
    (`jobs_total` says how many there are in all). A batch of `limit` or fewer: every one, in
    its order. A bigger one, in this order:

    * the latest that failed, at most a third of `limit`, so a batch running at a concurrency
      above `limit` still shows its failures;
    * those running now, in the batch's order;
    * with rows to spare, the latest that finished otherwise, then the next to start.

    Each of its queries has a LIMIT, so a terminal can poll it for a batch of 10,000; what
    PostgreSQL sorts for them is the batch's running, failed or finished jobs, never their steps.
    """
    batch = get_batch(session, batch_id, None)
    query = job_view_rows(batch_id)
    if batch.total_restaurants <= limit:
        rows = list(session.execute(query.order_by(Job.position).limit(limit)).all())
    else:
        latest_first = (Job.completed_at.desc().nulls_last(), Job.position)
        rows = []
        for statuses, order, share in (
            ([JobStatus.FAILED], latest_first, limit // 3),
            ([JobStatus.IN_PROGRESS], (Job.position,), limit),
            ([JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.SKIPPED], latest_first, limit),
            ([JobStatus.PENDING], (Job.position,), limit),
        ):
            room = min(share, limit - len(rows))
            if room > 0:
                chosen = query.where(Job.status.in_(statuses)).order_by(*order).limit(room)
                rows += session.execute(chosen).all()
        rank = {JobStatus.IN_PROGRESS: 0, JobStatus.FAILED: 1}  # on screen: running, failed, rest
        rows.sort(key=lambda row: rank.get(row.status, 2))
    return BatchJobsPage(
        **batch_fields(batch),
        jobs=_job_views(session, batch, rows, with_results=False),
        jobs_total=batch.total_restaurants,
        next_cursor=None,
    )


def _job_views(
    session: Session, batch: Batch, rows: Sequence[Any], with_results: bool
) -> list[JobView]:
    """The views of these rows of `job_view_rows`, each with its steps, in the rows' order.

    The steps are read by the jobs' ids, not their positions: PostgreSQL then reads the steps'
    (job, step) index; a join on a page's positions was planned as a scan of every step row at
    10,000 restaurants."""
    steps = step_views(session, with_results, job_ids=[job.id for job in rows])
    graph = graph_from_record(batch.step_graph, current_registry())
    return [job_view(job, steps.get(job.id, []), graph) for job in rows]


def job_of(session: Session, job_id: uuid.UUID, organisation_id: uuid.UUID | None) -> Job:
    """The job, when its batch is in `organisation_id`; NotFoundError otherwise."""
    query = select(Job).join(Batch, Batch.id == Job.batch_id).where(Job.id == job_id)
    if organisation_id is not None:
        query = query.where(Batch.organisation_id == organisation_id)
    job = session.scalar(query)
    if job is None:
        raise NotFoundError(
            f"job {job_id} does not exist in this organisation; a batch's jobs are listed by "
            "GET /registration-batches/{batch_id}"
        )
    return job


def job_detail(
    session: Session,
    job_id: uuid.UUID,
    organisation_id: uuid.UUID | None,
    with_results: bool = False,
) -> JobView:
    """One job with its steps (their results only `with_results`) and its current step."""
    job = job_of(session, job_id, organisation_id)
    batch = get_batch(session, job.batch_id)
    row = session.execute(job_view_rows(job.batch_id).where(Job.id == job.id)).one()
    return _job_views(session, batch, [row], with_results)[0]
