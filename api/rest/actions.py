"""Batch actions (start, pause, resume, cancel, retry-failed) and single registrations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from regbatch.api.lifecycle import announce_cancel
from regbatch.api.rest import idempotency
from regbatch.api.rest.auth import CallerDep
from regbatch.api.rest.batches import batch_url, renamed
from regbatch.api.rest.idempotency import IdempotencyKeyHeader
from regbatch.api.rest.schemas import (
    BatchCreated,
    CancelResult,
    PauseResult,
    RegistrationRequest,
    ResumeResult,
    RetryCreated,
    error_responses,
)
from regbatch.api.rest.starting import start_if_asked, submit
from regbatch.errors import InvalidInputError
from regbatch.services import batches, lifecycle
from regbatch.services.starts import StartResult
from regbatch.statuses import BatchStatus

router = APIRouter(tags=["batch actions"])
AutoStart = Annotated[bool, Query(description="Also submit the new batch to Prefect.")]


def accepted(response: Response, batch_id: uuid.UUID) -> None:
    """An asynchronous action's answer: 202, the batch's URL to follow it in Location."""
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = batch_url(batch_id)


@router.post(
    "/registration-batches/{batch_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StartResult,
    responses=error_responses(404, 409, 503),
    summary="Submit a draft or paused batch to Prefect (it is pending until a runner takes it)",
    operation_id="start_batch",
)
async def start(batch_id: uuid.UUID, caller: CallerDep, response: Response) -> StartResult:
    """202: the batch is queued for a runner; follow it at the Location."""
    started = await submit(batch_id, caller)
    accepted(response, batch_id)
    return started


@router.post(
    "/registration-batches/{batch_id}/pause",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PauseResult,
    responses=error_responses(404, 409),
    summary="Pause a running batch at its next step boundary",
    operation_id="pause_batch",
)
def pause(batch_id: uuid.UUID, caller: CallerDep, response: Response) -> PauseResult:
    """202: running steps finish, nothing new starts; the batch is `paused` once they have."""
    detail = lifecycle.pause_batch(batch_id, caller.actor, caller.organisation_id)
    accepted(response, batch_id)
    return PauseResult(
        batch_id=detail.id,
        status=detail.status,
        requested_action=detail.requested_action,
        paused_at=detail.paused_at,
    )


@router.post(
    "/registration-batches/{batch_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ResumeResult,
    responses=error_responses(404, 409, 503),
    summary="Resume a paused batch (submitted to Prefect again), or withdraw a pause request",
    operation_id="resume_batch",
)
async def resume(batch_id: uuid.UUID, caller: CallerDep, response: Response) -> ResumeResult:
    """202: a paused batch is submitted to Prefect and continues from exactly where it
    stopped; a running batch with a pause request keeps running."""
    current = await run_in_threadpool(batches.get_batch, batch_id, caller.organisation_id)
    accepted(response, batch_id)
    if current.status == BatchStatus.PAUSED:
        started = await submit(batch_id, caller)
        return ResumeResult(
            batch_id=batch_id,
            status=started.status,
            requested_action=None,
            started_at=started.started_at,
            flow_run_id=started.flow_run_id,
        )
    detail = await run_in_threadpool(
        lifecycle.resume_batch, batch_id, caller.actor, caller.organisation_id
    )
    return ResumeResult(
        batch_id=detail.id, status=detail.status, requested_action=detail.requested_action
    )


@router.post(
    "/registration-batches/{batch_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelResult,
    responses=error_responses(404, 409),
    summary="Cancel a batch (at once when nothing runs it, else at its next step boundary)",
    operation_id="cancel_batch",
)
def cancel(
    batch_id: uuid.UUID, caller: CallerDep, response: Response, background: BackgroundTasks
) -> CancelResult:
    """202: the answer does not wait for the webhooks of a batch cancelled at once; they are
    delivered after it."""
    detail = lifecycle.cancel_batch(batch_id, caller.actor, caller.organisation_id)
    background.add_task(announce_cancel, detail)
    accepted(response, batch_id)
    return CancelResult(
        batch_id=detail.id,
        status=detail.status,
        requested_action=detail.requested_action,
        cancelled_at=detail.cancelled_at,
    )


@router.post(
    "/registration-batches/{batch_id}/retry-failed",
    status_code=status.HTTP_201_CREATED,
    response_model=RetryCreated,
    responses={
        200: {
            "model": RetryCreated,
            "description": "An earlier call made the retry batch: it is answered as it is "
            "(`already_existed` true), nothing is made or started.",
        },
        **error_responses(404, 409, 503, idempotent=True),
    },
    summary="Create the linked batch of the failed restaurants (and start it with auto_start)",
    operation_id="retry_failed_batch",
)
async def retry_failed(
    batch_id: uuid.UUID,
    caller: CallerDep,
    request: Request,
    response: Response,
    auto_start: AutoStart = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> object:
    """Safe to repeat: one retry batch per failed restaurant, however many calls arrive.

    201 with a Location header when this call made the retry batch; 200 with the existing one
    when an earlier call made it (a cancelled retry batch does not count).
    """
    if (replay := await idempotency.begin(request, caller, idempotency_key)) is not None:
        return replay
    outcome = await run_in_threadpool(
        lifecycle.retry_failed, batch_id, caller.actor, caller.organisation_id
    )
    if outcome.existed:
        response.status_code = status.HTTP_200_OK
        return RetryCreated(
            new_batch_id=outcome.batch_id, status=outcome.status, already_existed=True
        )
    response.headers["Location"] = batch_url(outcome.batch_id)
    created = RetryCreated(new_batch_id=outcome.batch_id, status=outcome.status)
    return await start_if_asked(created, outcome.batch_id, caller, auto_start)


@router.post(
    "/registrations",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchCreated,
    responses=error_responses(400, 503, idempotent=True),
    summary="Register one restaurant: a batch of one, started at once unless auto_start is false",
    operation_id="register_restaurant",
)
async def register(
    body: RegistrationRequest,
    caller: CallerDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> object:
    """201 with the new batch's URL in Location."""
    if (replay := await idempotency.begin(request, caller, idempotency_key)) is not None:
        return replay
    try:
        batch_id = await run_in_threadpool(
            lambda: batches.create_single(
                caller.organisation_id,
                body.restaurant_id,
                settings=body.config,
                created_by=caller.actor,
            )
        )
    except InvalidInputError as exc:
        raise renamed(exc, {"settings": "config", "restaurant_ids": "restaurant_id"}) from None
    response.headers["Location"] = batch_url(batch_id)
    created = BatchCreated(batch_id=batch_id, jobs_count=1, status=BatchStatus.DRAFT)
    return await start_if_asked(created, batch_id, caller, body.auto_start)
