"""What screens show of batches: a filtered, sorted, paged batch list, and a batch with one
page of its restaurant x step matrix. Each call is one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from regbatch.db import batch_pages as pages
from regbatch.db import overview as data
from regbatch.db.batches import get_batch
from regbatch.db.engine import session_scope
from regbatch.db.overview import BatchSort
from regbatch.services.batches import parse_uuid
from regbatch.services.progress import ProgressView, progress_of
from regbatch.statuses import BatchStatus, JobStatus
from regbatch.views import (
    BatchJobsPage,
    BatchListPage,
    BatchView,
    DeliveryAttempt,
    JobView,
    MatrixPage,
)

__all__ = [
    "BatchSort",
    "batch_header",
    "batch_jobs",
    "batch_live",
    "find_batches",
    "job_detail",
    "restaurant_steps",
    "webhook_attempts",
]


def find_batches(
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
    """One page of the organisation's batches, filtered and sorted in SQL, with the total
    (from `offset`, or after `cursor`: the previous page's next_cursor)."""
    with session_scope() as session:
        return data.search_batches(
            session,
            organisation_id,
            statuses=statuses,
            name=name,
            created_after=created_after,
            sort=sort,
            descending=descending,
            offset=offset,
            limit=limit,
            cursor=cursor,
            include_jobs=include_jobs,
        )


def batch_header(batch_id: str | uuid.UUID, organisation_id: uuid.UUID | None) -> BatchView:
    """The batch's own fields (no jobs); NotFoundError outside `organisation_id`."""
    with session_scope() as session:
        return data.batch_view(session, parse_uuid(batch_id, "batch_id"), organisation_id)


def batch_live(
    batch_id: str | uuid.UUID,
    organisation_id: uuid.UUID | None,
    *,
    job_statuses: Sequence[JobStatus] = (),
    offset: int = 0,
    limit: int = 100,
) -> tuple[BatchView, ProgressView, MatrixPage]:
    """What a watched batch shows, in one transaction of five queries: its row, its progress
    (services/progress.py: job counts, the step histogram, the averages of its ETA) and one
    page of its matrix (restaurants in `job_statuses`, when given); no step results."""
    bid = parse_uuid(batch_id, "batch_id")
    with session_scope() as session:
        batch = get_batch(session, bid, organisation_id)
        progress = progress_of(session, batch)
        wanted = sum(progress.jobs[s] for s in job_statuses) if job_statuses else progress.total
        page = data.matrix_page(
            session, bid, job_statuses=job_statuses, offset=offset, limit=limit, total=wanted
        )
        return data.view_of(batch), progress, page


def batch_jobs(
    batch_id: str | uuid.UUID,
    organisation_id: uuid.UUID | None,
    *,
    limit: int = 100,
    cursor: str | None = None,
    with_results: bool = False,
) -> BatchJobsPage:
    """The batch with one page of its jobs and their steps (results only `with_results`)."""
    bid = parse_uuid(batch_id, "batch_id")
    with session_scope() as session:
        return pages.batch_jobs_page(
            session, bid, organisation_id, limit=limit, cursor=cursor, with_results=with_results
        )


def live_batch(batch_id: uuid.UUID, limit: int) -> BatchJobsPage:
    """The batch and at most `limit` of its restaurants worth watching (`live_jobs_page`)."""
    with session_scope() as session:
        return pages.live_jobs_page(session, batch_id, limit)


def batch_status(batch_id: uuid.UUID) -> BatchStatus:
    """The batch's status alone (one row by key); NotFoundError when there is no such batch."""
    with session_scope() as session:
        return get_batch(session, batch_id, None).status


def job_detail(
    job_id: str | uuid.UUID, organisation_id: uuid.UUID | None, with_results: bool = False
) -> JobView:
    """One job with its steps; NotFoundError outside `organisation_id`."""
    with session_scope() as session:
        return pages.job_detail(
            session, parse_uuid(job_id, "job_id"), organisation_id, with_results
        )


def webhook_attempts(organisation_id: uuid.UUID, limit: int = 100) -> list[DeliveryAttempt]:
    """The organisation's latest webhook delivery attempts (the delivery log), newest first."""
    with session_scope() as session:
        return data.webhook_attempts(session, organisation_id, limit)


def restaurant_steps(
    batch_id: str | uuid.UUID, job_id: str | uuid.UUID, organisation_id: uuid.UUID | None
) -> JobView:
    """One restaurant of the batch with each of its steps (no results)."""
    with session_scope() as session:
        return data.restaurant_steps(
            session, parse_uuid(batch_id, "batch_id"), parse_uuid(job_id, "job_id"), organisation_id
        )
