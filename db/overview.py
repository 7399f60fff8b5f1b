"""Overviews for screens: a batch list filtered, sorted and paged in SQL, and one page of a
batch's restaurant x step matrix in one query (step statuses, attempts and errors; never the
steps' results)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.db.batch_pages import (
    bad_cursor,
    current_steps,
    decode_cursor,
    encode_cursor,
    job_detail,
    job_previews,
)
from regbatch.db.batches import batch_fields, batch_summary, get_batch
from regbatch.db.models import Batch, Job, JobStep, OperationLog, Restaurant
from regbatch.errors import InvalidInputError, NotFoundError, Problem
from regbatch.statuses import BatchStatus, JobStatus
from regbatch.views import (
    BatchListItem,
    BatchListPage,
    BatchView,
    DeliveryAttempt,
    JobView,
    MatrixCell,
    MatrixPage,
    MatrixRow,
)

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
    created_after: datetime | None = None,
    sort: str = BatchSort.CREATED,
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
    cursor: str | None = None,
    include_jobs: bool = False,
) -> BatchListPage:
    """The organisation's batches with any of `statuses` whose name contains `name` (any case),
    sorted (ties by newest), one page from `offset` or after `cursor` (a page's next_cursor,
    stable under inserts), with each batch's current step and, `include_jobs`, its first
    restaurants; the total counts every match."""
    problems = _list_problems(statuses, name, sort, offset, limit)
    if cursor and offset:
        problems.append(Problem("offset", f"{offset} given with a cursor; use one or the other"))
    if problems:
        raise InvalidInputError("invalid batch list filters", problems)
    conditions: list[ColumnElement[bool]] = [Batch.organisation_id == organisation_id]
    if statuses:
        conditions.append(Batch.status.in_(list(statuses)))
    if name and name.strip():
        pattern = "%" + _escape_like(name.strip().lower()) + "%"
        conditions.append(func.lower(Batch.name).like(pattern, escape="\\"))
    if created_after is not None:
        conditions.append(Batch.created_at > created_after)
    keyset = _Keyset(BatchSort(sort), descending)
    after = [keyset.after(cursor)] if cursor else []
    rows = list(
        session.scalars(
            select(Batch)
            .where(*conditions, *after)
            .order_by(*keyset.order())
            .offset(offset)
            .limit(limit + 1)
        )
    )
    next_cursor = keyset.cursor(rows[limit - 1]) if len(rows) > limit else None
    items = _items(session, rows[:limit], include_jobs)
    total = session.scalar(select(func.count()).select_from(Batch).where(*conditions)) or 0
    return BatchListPage(
        items=items, total=int(total), offset=offset, limit=limit, next_cursor=next_cursor
    )


def _items(session: Session, rows: Sequence[Batch], include_jobs: bool) -> list[BatchListItem]:
    ids = [b.id for b in rows]
    steps = current_steps(session, ids)
    previews = job_previews(session, ids) if include_jobs else {}
    return [
        BatchListItem(
            **batch_summary(b).model_dump(exclude={"current_step"}),
            current_step=steps.get(b.id),
            jobs=previews.get(b.id) if include_jobs else None,
        )
        for b in rows
    ]


class _Keyset:
    """The batch list's order as a keyset: (sort value missing, sort value, created_at, id),
    missing values last, ties newest first; a cursor carries the last row's key."""

    def __init__(self, sort: BatchSort, descending: bool) -> None:
        self.sort, self.descending = sort, descending
        self.column = _SORT_COLUMNS[sort]
        self.kind = f"batches:{sort}:{'desc' if descending else 'asc'}"
        # only a finished time may be missing; the others keep the list's index usable
        self.nullable = sort == BatchSort.FINISHED

    def order(self) -> list[Any]:
        column = self.column.desc() if self.descending else self.column.asc()
        missing_last = [self.column.is_(None)] if self.nullable else []
        return [*missing_last, column, Batch.created_at.desc(), Batch.id.desc()]

    def cursor(self, batch: Batch) -> str:
        value = _SORT_VALUES[self.sort](batch)
        text = value.isoformat() if isinstance(value, datetime) else value
        return encode_cursor(
            self.kind, {"v": text, "c": batch.created_at.isoformat(), "i": str(batch.id)}
        )

    def after(self, cursor: str) -> ColumnElement[bool]:
        """The rows after the cursor's row in this order."""
        fields = decode_cursor(cursor, self.kind)
        try:
            value = fields["v"]
            if value is not None and self.sort in (BatchSort.CREATED, BatchSort.FINISHED):
                value = datetime.fromisoformat(value)
            tie = tuple_(Batch.created_at, Batch.id) < tuple_(
                datetime.fromisoformat(fields["c"]), uuid.UUID(fields["i"])
            )
        except (KeyError, TypeError, ValueError):
            raise bad_cursor(cursor) from None
        if value is None:
            return and_(self.column.is_(None), tie)
        beyond = self.column < value if self.descending else self.column > value
        missing = [self.column.is_(None)] if self.nullable else []
        return or_(*missing, beyond, and_(self.column == value, tie))


_SORT_VALUES: dict[BatchSort, Any] = {
    BatchSort.CREATED: lambda b: b.created_at,
    BatchSort.NAME: lambda b: b.name.lower(),
    BatchSort.STATUS: lambda b: str(b.status),
    BatchSort.SIZE: lambda b: b.total_restaurants,
    BatchSort.FINISHED: lambda b: b.completed_at,
}


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
    return BatchView(**batch_fields(batch))


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
    in_batch = session.scalar(select(Job.id).where(Job.id == job_id, Job.batch_id == batch_id))
    if in_batch is None:
        raise NotFoundError(
            f"restaurant job {job_id} is not in batch {batch_id}; pick a restaurant from "
            "the batch's matrix"
        )
    return job_detail(session, job_id, organisation_id)
