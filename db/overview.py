"""Overviews for screens: a batch list filtered, sorted and paged in SQL, and one page of a
batch's restaurant x step matrix in one query (step statuses, attempts and errors; never the
steps' results)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.db.batches import batch_summary, get_batch
from regbatch.db.models import Batch, Job, JobStep, OperationLog, Restaurant
from regbatch.errors import InvalidInputError, NotFoundError, Problem
from regbatch.statuses import BatchStatus, JobStatus
from regbatch.views import (
    BatchListPage,
    BatchView,
    DeliveryAttempt,
    JobView,
    MatrixCell,
    MatrixPage,
    MatrixRow,
    StepView,
)

_STEP_SUMMARY_COLUMNS = [
    column
    for name, column in JobStep.__table__.c.items()
    if name in StepView.model_fields and name != "result_data"
]
PAGE_MAX = 500
NAME_SEARCH_MAX = 200


class BatchSort(StrEnum):
    """The orders a batch list can be sorted in."""

    CREATED = "created"
    NAME = "name"
    STATUS = "status"
    SIZE = "size"
    FINISHED = "finished"


_SORT_COLUMNS: dict[BatchSort, Any] = {
    BatchSort.CREATED: Batch.created_at,
    BatchSort.NAME: func.lower(Batch.name),
    BatchSort.STATUS: Batch.status,
    BatchSort.SIZE: Batch.total_restaurants,
    BatchSort.FINISHED: Batch.completed_at,
}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _list_problems(
    statuses: Sequence[str], name: str | None, sort: str, offset: int, limit: int
) -> list[Problem]:
    problems = [
        Problem("status", f"{s!r} is not a batch status; use one of {', '.join(BatchStatus)}")
        for s in statuses
        if s not in set(BatchStatus)
    ]
    if sort not in set(BatchSort):
        problems.append(
            Problem("sort", f"{sort!r} is not a sort order; use one of {', '.join(BatchSort)}")
        )
    if name is not None and len(name) > NAME_SEARCH_MAX:
        problems.append(
            Problem("name", f"has {len(name)} characters; search with at most {NAME_SEARCH_MAX}")
        )
    if offset < 0:
        problems.append(Problem("offset", f"{offset} is negative; use 0 or more"))
    if not 1 <= limit <= PAGE_MAX:
        problems.append(Problem("limit", f"{limit} is out of range; use 1 to {PAGE_MAX}"))
    return problems


def search_batches(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    statuses: Sequence[str] = (),
    name: str | None = None,
    sort: str = BatchSort.CREATED,
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> BatchListPage:
    """The organisation's batches with any of `statuses` whose name contains `name` (any case),
    sorted (ties by newest), one page: two queries, the page and the count."""
    problems = _list_problems(statuses, name, sort, offset, limit)
    if problems:
        raise InvalidInputError("invalid batch list filters", problems)
    conditions: list[ColumnElement[bool]] = [Batch.organisation_id == organisation_id]
    if statuses:
        conditions.append(Batch.status.in_(list(statuses)))
    if name and name.strip():
        pattern = "%" + _escape_like(name.strip().lower()) + "%"
        conditions.append(func.lower(Batch.name).like(pattern, escape="\\"))
    column = _SORT_COLUMNS[BatchSort(sort)]
    order = column.desc().nulls_last() if descending else column.asc().nulls_last()
    rows = session.scalars(
        select(Batch)
        .where(*conditions)
        .order_by(order, Batch.created_at.desc(), Batch.id.desc())
        .offset(offset)
        .limit(limit)
    )
    items = [batch_summary(b) for b in rows]
    total = session.scalar(select(func.count()).select_from(Batch).where(*conditions)) or 0
    return BatchListPage(items=items, total=int(total), offset=offset, limit=limit)


def matrix_page(
    session: Session,
    batch_id: uuid.UUID,
    *,
    job_statuses: Sequence[JobStatus] = (),
    offset: int = 0,
    limit: int = 100,
    total: int | None = None,
) -> MatrixPage:
    """One page of the batch's restaurants (in the batch's order, only those in `job_statuses`
    when given) with a cell per step, in one query; `total` (how many restaurants match) is
    counted by a second query unless the caller knows it."""
    if offset < 0 or not 1 <= limit <= PAGE_MAX:
        raise InvalidInputError(
            "invalid matrix page",
            [Problem("offset/limit", f"{offset}/{limit}: use offset >= 0, limit 1 to {PAGE_MAX}")],
        )
    conditions: list[ColumnElement[bool]] = [Job.batch_id == batch_id]
    if job_statuses:
        conditions.append(Job.status.in_(list(job_statuses)))
    page = (
        select(
            Job.id, Job.position, Job.status, Job.current_step, Job.error_message, Restaurant.name
        )
        .join(Restaurant, Restaurant.id == Job.restaurant_id)
        .where(*conditions)
        .order_by(Job.position)
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        select(
            page,
            JobStep.step_number,
            JobStep.status.label("step_status"),
            JobStep.attempts,
            JobStep.error_message.label("step_error"),
            JobStep.skip_reason,
        )
        .outerjoin(JobStep, JobStep.job_id == page.c.id)
        .order_by(page.c.position, JobStep.step_number)
    )
    result = _rows(rows)
    if total is None:
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    return MatrixPage(rows=result, total=int(total), offset=offset, limit=limit)


def _rows(rows: Any) -> list[MatrixRow]:
    by_job: dict[uuid.UUID, MatrixRow] = {}
    for r in rows:
        row = by_job.get(r.id)
        if row is None:
            row = by_job[r.id] = MatrixRow(
                job_id=r.id,
                position=r.position,
                restaurant_name=r.name,
                status=r.status,
                current_step=r.current_step,
                error_message=r.error_message,
                cells={},
            )
        if r.step_number is not None:
            row.cells[r.step_number] = MatrixCell(
                r.step_status, r.attempts, r.step_error, r.skip_reason
            )
    return list(by_job.values())


def batch_view(
    session: Session, batch_id: uuid.UUID, organisation_id: uuid.UUID | None
) -> BatchView:
    """The batch's own row as a view (no jobs); NotFoundError outside `organisation_id`."""
    return view_of(get_batch(session, batch_id, organisation_id))


def view_of(batch: Batch) -> BatchView:
    """A batch row as a view (no jobs)."""
    return BatchView(
        **batch_summary(batch).model_dump(),
        organisation_id=batch.organisation_id,
        settings=batch.settings,
        created_by=batch.created_by,
        breaker_threshold=float(batch.breaker_threshold),
        breaker_min_finished=batch.breaker_min_finished,
        requested_action=batch.requested_action,
        pause_reason=batch.pause_reason,
        error_message=batch.error_message,
        paused_at=batch.paused_at,
        flow_run_id=batch.flow_run_id,
        step_graph=batch.step_graph,
        cancelled_at=batch.cancelled_at,
        updated_at=batch.updated_at,
    )


def webhook_attempts(
    session: Session, organisation_id: uuid.UUID, limit: int = 100
) -> list[DeliveryAttempt]:
    """The organisation's latest webhook delivery attempts, newest first."""
    rows = session.scalars(
        select(OperationLog)
        .where(
            OperationLog.organisation_id == organisation_id,
            OperationLog.operation.in_([Operation.WEBHOOK_DELIVERED, Operation.WEBHOOK_FAILED]),
        )
        .order_by(OperationLog.created_at.desc(), OperationLog.id.desc())
        .limit(limit)
    )
    return [
        DeliveryAttempt(
            at=row.created_at,
            batch_id=row.batch_id,
            delivered=row.operation == Operation.WEBHOOK_DELIVERED,
            subscription_id=row.details.get("subscription_id"),
            url=row.details.get("url"),
            event=row.details.get("event"),
            attempt=row.details.get("attempt"),
            status_code=row.details.get("status_code"),
            error=row.details.get("error"),
        )
        for row in rows
    ]


def restaurant_steps(
    session: Session, batch_id: uuid.UUID, job_id: uuid.UUID, organisation_id: uuid.UUID | None
) -> JobView:
    """One restaurant of the batch with each of its steps (no results); NotFoundError when the
    job is not the batch's or the batch not the organisation's."""
    get_batch(session, batch_id, organisation_id)
    found = session.execute(
        select(Job, Restaurant.name)
        .join(Restaurant, Restaurant.id == Job.restaurant_id)
        .where(Job.id == job_id, Job.batch_id == batch_id)
    ).first()
    if found is None:
        raise NotFoundError(
            f"restaurant job {job_id} is not in batch {batch_id}; pick a restaurant from "
            "the batch's matrix"
        )
    job, name = found
    steps = session.execute(
        select(*_STEP_SUMMARY_COLUMNS).where(JobStep.job_id == job_id).order_by(JobStep.step_number)
    )
    return JobView(
        id=job.id,
        restaurant_id=job.restaurant_id,
        restaurant_name=name,
        position=job.position,
        status=job.status,
        current_step=job.current_step,
        error_message=job.error_message,
        error_details=job.error_details,
        retry_of_job_id=job.retry_of_job_id,
        started_at=job.started_at,
        completed_at=job.completed_at,
        steps=[StepView(**row._asdict(), result_data=None) for row in steps],
    )
