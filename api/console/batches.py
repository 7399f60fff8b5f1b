"""Console pages of batches: the list (filtered, sorted and paged in SQL), a batch's detail with
its live restaurant x step matrix, its actions and its exports."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from regbatch.api.console.auth import CheckedDep, SessionDep
from regbatch.api.console.render import page
from regbatch.batch_rules import allowed_actions
from regbatch.plugins import current_registry, graph_from_record
from regbatch.services.overview import BatchSort, batch_live, find_batches, restaurant_steps
from regbatch.services.progress import ProgressView
from regbatch.statuses import BATCH_AT_REST, BatchStatus, JobStatus
from regbatch.steps import current_step, step_label

router = APIRouter(prefix="/console")
LIST_PAGE = 50
MATRIX_PAGE = 100
# Which restaurants the matrix shows: every one, or those in some statuses.
SHOWS: dict[str, tuple[JobStatus, ...]] = {
    "all": (),
    "failed": (JobStatus.FAILED,),
    "running": (JobStatus.IN_PROGRESS,),
    "pending": (JobStatus.PENDING,),
    "completed": (JobStatus.COMPLETED, JobStatus.SKIPPED),
    "cancelled": (JobStatus.CANCELLED,),
}
ADVICE = {
    JobStatus.FAILED: "Fix what the error names (the restaurant's data or the batch settings), "
    "then use Retry failed: it re-runs only the failed steps and those they held back.",
    JobStatus.CANCELLED: "The batch was cancelled before this restaurant finished; put it in "
    "a new batch to register it.",
}


@router.get("", include_in_schema=False)
def home() -> Response:
    return RedirectResponse("/console/batches", status_code=303)


@router.get("/batches", include_in_schema=False)
def batches_page(
    request: Request,
    session: SessionDep,
    status: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Annotated[str, Query(max_length=20)] = BatchSort.CREATED.value,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    notice: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    statuses = [s for s in status or [] if s]
    listing = find_batches(
        session.organisation_id,
        statuses=statuses,
        name=q or None,
        sort=sort,
        descending=order == "desc",
        offset=(page_number - 1) * LIST_PAGE,
        limit=LIST_PAGE,
    )
    base = {"status": statuses, "q": q, "sort": sort, "order": order}
    return page(
        request,
        "batches.html",
        session=session,
        listing=listing,
        chosen=set(statuses),
        q=q,
        sort=sort,
        order=order,
        page_number=page_number,
        pages=max(1, -(-listing.total // LIST_PAGE)),
        statuses=list(BatchStatus),
        sorts=list(BatchSort),
        link=lambda **changes: "?" + urlencode({**base, **changes}, doseq=True),
        notice=notice,
    )


def _detail_context(
    batch_id: uuid.UUID, session: Any, show: str, page_number: int
) -> dict[str, Any]:
    """What the detail page and its live fragment show (services/overview.batch_live)."""
    wanted = SHOWS.get(show, ())
    batch, progress, matrix = batch_live(
        batch_id,
        session.organisation_id,
        job_statuses=wanted,
        offset=(page_number - 1) * MATRIX_PAGE,
        limit=MATRIX_PAGE,
    )
    graph = graph_from_record(batch.step_graph, current_registry())
    at = {
        row.job_id: current_step({n: c.status for n, c in row.cells.items()}, graph)
        for row in matrix.rows
        if row.status in (JobStatus.IN_PROGRESS, JobStatus.PENDING)
    }
    return {
        "batch": batch,
        "progress": progress,
        "at": at,
        "matrix": matrix,
        "show": show if show in SHOWS else "all",
        "shows": list(SHOWS),
        "page_number": page_number,
        "pages": max(1, -(-matrix.total // MATRIX_PAGE)),
        "actions": [
            a.value for a in allowed_actions(batch.status, batch.requested_action, batch.failed)
        ],
        "polling": _polling(progress),
        "advice": ADVICE,
        "prefect_url": _flow_run_url(batch.flow_run_id),
    }


def _polling(progress: ProgressView) -> bool:
    """Poll while something may change without the user: queued or running."""
    return progress.status not in BATCH_AT_REST and progress.status != BatchStatus.DRAFT


@router.get("/batches/{batch_id}", include_in_schema=False)
def batch_page(
    request: Request,
    batch_id: uuid.UUID,
    session: SessionDep,
    show: Annotated[str, Query(max_length=20)] = "all",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    notice: Annotated[str, Query(max_length=500)] = "",
    error: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    context = _detail_context(batch_id, session, show, page_number)
    return page(request, "batch.html", session=session, notice=notice, error=error, **context)


@router.get("/batches/{batch_id}/live", include_in_schema=False)
def live_fragment(
    request: Request,
    batch_id: uuid.UUID,
    session: SessionDep,
    show: Annotated[str, Query(max_length=20)] = "all",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """The live part of the detail page (progress, actions, matrix), polled every 2 s."""
    context = _detail_context(batch_id, session, show, page_number)
    return page(request, "batch_live.html", session=session, **context)


@router.get("/batches/{batch_id}/restaurants/{job_id}", include_in_schema=False)
def restaurant_panel(
    request: Request, batch_id: uuid.UUID, job_id: uuid.UUID, session: SessionDep
) -> Response:
    """One restaurant's steps (status, attempts, duration, error), shown under the matrix."""
    job = restaurant_steps(batch_id, job_id, session.organisation_id)
    return page(
        request, "restaurant_steps.html", session=session, job=job, advice=ADVICE,
        labels={n: step_label(n, s.step_key) for n, s in ((s.step_number, s) for s in job.steps)},
    )  # fmt: skip


@router.post("/batches/{batch_id}/{action}", include_in_schema=False)
async def batch_action(batch_id: uuid.UUID, action: str, session: CheckedDep) -> Response:
    """Start, pause, resume, cancel or retry the failed, through the REST API's services."""
    from regbatch.api.console.actions import perform

    outcome, target = await perform(batch_id, action, session)
    key = "notice" if outcome.ok else "error"
    return RedirectResponse(
        f"/console/batches/{target}?{urlencode({key: outcome.message})}", status_code=303
    )


@router.get("/batches/{batch_id}/export.{fmt}", include_in_schema=False)
async def batch_export(batch_id: uuid.UUID, fmt: str, session: SessionDep) -> Response:
    from regbatch.services.exporting import export_batch

    if fmt not in ("csv", "json"):
        return Response(
            f"export format {fmt!r} is not offered; use export.csv or export.json",
            status_code=404,
            media_type="text/plain",
        )
    content_type, body = await run_in_threadpool(
        export_batch, batch_id, session.organisation_id, fmt
    )
    return Response(
        body,
        media_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.{fmt}"'},
    )


@lru_cache(maxsize=1)
def _prefect_ui() -> str | None:
    from prefect.settings import PREFECT_UI_URL

    value = PREFECT_UI_URL.value()
    return str(value).rstrip("/") if value else None


def _flow_run_url(flow_run_id: uuid.UUID | None) -> str | None:
    ui = _prefect_ui() if flow_run_id is not None else None
    return f"{ui}/runs/flow-run/{flow_run_id}" if ui else None
