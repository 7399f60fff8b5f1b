"""`/templates`: saved restaurant selections, and batches made from them."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from regbatch.api.rest import idempotency
from regbatch.api.rest.auth import CallerDep
from regbatch.api.rest.batches import batch_url
from regbatch.api.rest.idempotency import IdempotencyKeyHeader
from regbatch.api.rest.schemas import (
    CreateTemplateRequest,
    PreviewRow,
    TemplateRun,
    error_responses,
)
from regbatch.api.rest.starting import start_if_asked
from regbatch.errors import NotFoundError
from regbatch.services import templates
from regbatch.services.progress import batch_progress
from regbatch.services.templates import TemplateView
from regbatch.statuses import BatchStatus

router = APIRouter(prefix="/templates", tags=["templates"])
TemplateRef = Annotated[str, Path(max_length=120, description="The template's id or name.")]


def _checked(ref: str) -> str:
    # A name with characters no template can have names no template (PostgreSQL refuses NUL).
    if "\x00" in ref or any("\ud800" <= c <= "\udfff" for c in ref):
        raise NotFoundError(f"template {ref!r} does not exist in this organisation")
    return ref


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateView,
    responses=error_responses(400),
    summary="Save a template",
    operation_id="create_template",
)
def create_template(
    body: CreateTemplateRequest, caller: CallerDep, response: Response
) -> TemplateView:
    """201 with the template's URL in Location."""
    created = templates.create_template(caller.organisation_id, **body.model_dump())
    response.headers["Location"] = f"/templates/{quote(created.name, safe='')}"
    return created


@router.get(
    "", response_model=list[TemplateView], responses=error_responses(), summary="List templates"
)
def list_templates(caller: CallerDep) -> list[TemplateView]:
    """The caller's saved templates, by name."""
    return templates.list_templates(caller.organisation_id)


@router.get(
    "/{ref}", response_model=TemplateView, responses=error_responses(404), summary="A template"
)
def get_template(ref: TemplateRef, caller: CallerDep) -> TemplateView:
    """One template, by id or by name."""
    return templates.get_template(caller.organisation_id, _checked(ref))


@router.delete(
    "/{ref}",
    response_model=TemplateView,
    responses=error_responses(404),
    summary="Delete a template (the batches made from it stay); returns what it was",
)
def delete_template(ref: TemplateRef, caller: CallerDep) -> TemplateView:
    """Deletes the template (by id or name) and answers what it was."""
    return templates.delete_template(caller.organisation_id, _checked(ref))


@router.get(
    "/{ref}/preview",
    response_model=list[PreviewRow],
    responses=error_responses(404),
    summary="The restaurants the template would pick now, in batch order",
    operation_id="preview_template",
)
def preview(ref: TemplateRef, caller: CallerDep) -> list[PreviewRow]:
    """What running the template now would take; nothing is made."""
    rows = templates.preview_template(caller.organisation_id, _checked(ref))
    return [PreviewRow.model_validate(row) for row in rows]


@router.post(
    "/{ref}/run",
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateRun,
    responses={
        200: {"model": TemplateRun, "description": "No restaurant matches: no batch."},
        **error_responses(404, 503, idempotent=True),
    },
    summary="Make a batch of the restaurants the template picks now, and start it",
    operation_id="run_template",
)
async def run_template(
    ref: TemplateRef,
    caller: CallerDep,
    request: Request,
    response: Response,
    auto_start: Annotated[bool, Query(description="Submit the batch to Prefect.")] = True,
    idempotency_key: IdempotencyKeyHeader = None,
) -> object:
    """201 with the new batch's URL in Location (started unless auto_start is false); 200
    with no batch when no restaurant matches now."""
    if (replay := await idempotency.begin(request, caller, idempotency_key)) is not None:
        return replay
    batch_id = await run_in_threadpool(
        lambda: templates.create_batch_from_template(
            caller.organisation_id, _checked(ref), created_by=caller.actor
        )
    )
    if batch_id is None:
        response.status_code = status.HTTP_200_OK
        return TemplateRun(batch_id=None)
    response.headers["Location"] = batch_url(batch_id)
    total = (await run_in_threadpool(batch_progress, batch_id, caller.organisation_id)).total
    created = TemplateRun(batch_id=batch_id, jobs_count=total, status=BatchStatus.DRAFT)
    return await start_if_asked(created, batch_id, caller, auto_start)
