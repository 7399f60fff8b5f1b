"""`/jobs/{id}`: one restaurant of a batch, and the retry of its failed steps."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from starlette.concurrency import run_in_threadpool

from regbatch.api.rest.auth import CallerDep
from regbatch.api.rest.batches import batch_url, includes
from regbatch.api.rest.schemas import RetryCreated, error_responses
from regbatch.api.rest.starting import start_if_asked
from regbatch.services import lifecycle, overview
from regbatch.views import JobView

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobView,
    responses=error_responses(404),
    summary="One restaurant of a batch: its status, current step and steps",
    operation_id="get_job",
)
def get_job(
    job_id: uuid.UUID,
    caller: CallerDep,
    include: Annotated[
        str | None, Query(max_length=100, description="`results`: the steps' result_data too.")
    ] = None,
) -> JobView:
    """The job and every step's status, attempts, error and skip reason; the steps' outputs
    only with `include=results`."""
    wanted = includes(include, {"results"})
    return overview.job_detail(job_id, caller.organisation_id, "results" in wanted)


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryCreated,
    responses=error_responses(404, 409, 503),
    summary="Retry one failed restaurant's failed steps, in a linked batch of one",
    operation_id="retry_job",
)
async def retry_job(
    job_id: uuid.UUID,
    caller: CallerDep,
    response: Response,
    auto_start: Annotated[bool, Query(description="Submit the retry batch to Prefect.")] = True,
) -> object:
    """202 with the retry batch's URL in Location: a batch of this restaurant alone, linked to
    its batch, that re-runs its failed steps and those skipped because of them (its completed
    steps are carried over). 409 unless the job failed and its batch has stopped. A job that
    an earlier retry holds answers that retry batch (`already_existed`)."""
    outcome = await run_in_threadpool(
        lifecycle.retry_job, job_id, caller.actor, caller.organisation_id
    )
    response.headers["Location"] = batch_url(outcome.batch_id)
    created = RetryCreated(
        new_batch_id=outcome.batch_id, status=outcome.status, already_existed=outcome.existed
    )
    if outcome.existed:
        return created
    return await start_if_asked(created, outcome.batch_id, caller, auto_start)
