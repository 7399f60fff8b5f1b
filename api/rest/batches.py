"""`/registration-batches`: create, list, show, progress and export (the caller's only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from regbatch.api.rest import idempotency
from regbatch.api.rest.auth import CallerDep
from regbatch.api.rest.idempotency import IdempotencyKeyHeader
from regbatch.api.rest.schemas import (
    BatchCreated,
    BatchList,
    CreateBatchRequest,
    Moment,
    SortOrder,
    error_responses,
)
from regbatch.api.rest.starting import start_if_asked
from regbatch.db.batch_pages import JOBS_PAGE_MAX
from regbatch.db.overview import NAME_SEARCH_MAX, PAGE_MAX
from regbatch.db.types import utcnow
from regbatch.errors import InvalidInputError, Problem
from regbatch.services import batches, overview
from regbatch.services.exporting import ExportDocument, stream_export
from regbatch.services.overview import BatchSort
from regbatch.services.progress import ProgressView, batch_progress
from regbatch.statuses import BatchStatus
from regbatch.views import BatchJobsPage

router = APIRouter(prefix="/registration-batches", tags=["batches"])


def batch_url(batch_id: uuid.UUID) -> str:
    """Where a batch is read (the Location of the requests that make or act on it)."""
    return f"/registration-batches/{batch_id}"


def renamed(exc: InvalidInputError, names: dict[str, str]) -> InvalidInputError:
    """The same error with its fields named as the request names them ('settings.x' ->
    'common_config.x')."""

    def rename(field: str) -> str:
        head, dot, rest = field.partition(".")
        return names.get(head, head) + dot + rest

    problems = [Problem(rename(p.field), p.message, p.subject) for p in exc.problems]
    return InvalidInputError(exc.summary, problems)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchCreated,
    responses=error_responses(400, 503, idempotent=True),
    summary="Create a batch (a draft; started at once with auto_start)",
    operation_id="create_batch",
)
async def create_batch(
    body: CreateBatchRequest,
    caller: CallerDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> object:
    """201 with the new batch's URL in Location. Every check runs before anything is written:
    an invalid request creates nothing."""
    if (replay := await idempotency.begin(request, caller, idempotency_key)) is not None:
        return replay
    try:
        batch_id = await run_in_threadpool(
            lambda: batches.create_batch(
                caller.organisation_id,
                name=body.name if body.name is not None else f"Batch {utcnow():%Y-%m-%d %H:%M}",
                restaurant_ids=body.restaurant_ids,
                settings=body.common_config,
                execution_mode=body.execution_mode,
                concurrency=body.concurrency,
                breaker_threshold=body.breaker_threshold,
                breaker_min_finished=body.breaker_min_finished,
                created_by=caller.actor,
            )
        )
    except InvalidInputError as exc:
        raise renamed(exc, {"settings": "common_config"}) from None
    response.headers["Location"] = batch_url(batch_id)
    created = BatchCreated(
        batch_id=batch_id, jobs_count=len(body.restaurant_ids), status=BatchStatus.DRAFT
    )
    return await start_if_asked(created, batch_id, caller, body.auto_start)


@router.get(
    "",
    response_model=BatchList,
    responses=error_responses(400),
    summary="List batches: filter, search, sort, page",
    operation_id="list_batches",
)
def list_batches(
    caller: CallerDep,
    statuses: Annotated[
        list[str] | None,
        Query(
            alias="status",
            description="Batch statuses, comma-separated or repeated: " + ", ".join(BatchStatus),
        ),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=NAME_SEARCH_MAX, description="Part of the name, any case.")
    ] = None,
    created_after: Annotated[
        Moment | None, Query(description="ISO 8601 date or date-time; UTC when it has no zone.")
    ] = None,
    sort: Annotated[BatchSort, Query(description="The order; ties newest first.")] = (
        BatchSort.CREATED
    ),
    order: Annotated[SortOrder, Query()] = SortOrder.DESC,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page.")
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=10_000_000, description="Rows to skip; not with a cursor.")
    ] = 0,
    include: Annotated[
        str | None,
        Query(max_length=100, description="`jobs`: each batch's first restaurants."),
    ] = None,
) -> BatchList:
    """One page of the caller's batches and how many match in all; pass `next_cursor` back as
    `cursor` for the next page (stable while batches are created), or page with `offset`."""
    page = overview.find_batches(
        caller.organisation_id,
        statuses=split_list(statuses),
        name=q,
        created_after=_utc(created_after),
        sort=sort,
        descending=order == SortOrder.DESC,
        offset=offset,
        limit=limit,
        cursor=cursor or None,
        include_jobs="jobs" in includes(include, {"jobs"}),
    )
    return BatchList(
        items=page.items,
        total_count=page.total,
        limit=page.limit,
        offset=page.offset,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{batch_id}",
    response_model=BatchJobsPage,
    responses=error_responses(400, 404),
    summary="A batch with one page of its jobs and their steps",
    operation_id="get_batch",
)
def get_batch(
    batch_id: uuid.UUID,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=JOBS_PAGE_MAX, description="Jobs per page.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page.")
    ] = None,
    include: Annotated[
        str | None,
        Query(max_length=100, description="`results`: the steps' result_data too."),
    ] = None,
) -> BatchJobsPage:
    """The batch, `jobs_total`, and up to `limit` jobs in the batch's order with their steps'
    statuses, attempts and errors; the steps' outputs only with `include=results`."""
    page = overview.batch_jobs(
        batch_id,
        caller.organisation_id,
        limit=limit,
        cursor=cursor or None,
        with_results="results" in includes(include, {"results"}),
    )
    # serialised once: FastAPI would validate the page's thousand step views again first
    return Response(page.model_dump_json(), media_type="application/json")  # type: ignore[return-value]


def split_list(values: list[str] | None) -> list[str]:
    """Values given comma-separated, repeated, or both, blanks dropped."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def includes(include: str | None, allowed: set[str]) -> set[str]:
    """The parts an `include` parameter asks for; InvalidInputError naming the allowed ones."""
    asked = set(split_list([include] if include else []))
    unknown = sorted(asked - allowed)
    if unknown:
        raise InvalidInputError(
            "invalid include",
            [
                Problem(
                    "include",
                    f"{', '.join(map(repr, unknown))} cannot be included here; "
                    f"use {', '.join(sorted(allowed))} or leave include out",
                )
            ],
        )
    return asked


@router.get(
    "/{batch_id}/progress",
    response_model=ProgressView,
    responses=error_responses(404),
    summary="Counts, per-step histogram, percent, elapsed and ETA (cheap to poll)",
    operation_id="get_batch_progress",
)
def get_progress(batch_id: uuid.UUID, caller: CallerDep) -> ProgressView:
    """Jobs by status, each step's counts by status, percent finished, elapsed time and an
    estimate of the time left: the batch's row, then three aggregate queries (four while no
    restaurant has completed); the step counts read every step row of the batch."""
    return batch_progress(batch_id, caller.organisation_id)


@router.get(
    "/{batch_id}/export",
    response_class=Response,
    responses={
        200: {
            "description": "One row per restaurant: CSV, or JSON with the batch summary.",
            "model": ExportDocument,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **error_responses(404),
    },
    summary="Export a batch's results",
    operation_id="export_batch",
)
def export(
    batch_id: uuid.UUID,
    caller: CallerDep,
    fmt: Annotated[Literal["csv", "json"], Query(alias="format")] = "csv",
) -> Response:
    """One row per restaurant (outcome, failing step and error, the platform's ids and URLs),
    as CSV or as JSON with the batch; streamed, read from the database in chunks."""
    content_type, pieces = stream_export(batch_id, caller.organisation_id, fmt)
    filename = f"batch-{batch_id}.{fmt}"
    return StreamingResponse(
        pieces,
        media_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise InvalidInputError(
            "invalid batch list filters",
            [Problem("created_after", "is out of range; give a date between years 1 and 9999")],
        ) from None
