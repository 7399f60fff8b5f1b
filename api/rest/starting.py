"""Submitting batches to Prefect from a request, and what a client is told when that fails.

A request that creates a batch and starts it (auto_start, /registrations, retry-failed with
auto_start, a template run) keeps the batch it created when the start fails: the batch stays a
draft (starts.py undoes its queueing when the deployment is missing), and the error response
names it in `batch_id` and says how to start it. Deleting it instead would also erase its
"created" audit entry, and a client retrying the whole request would meet the same failure.
"""

from __future__ import annotations

import logging
import uuid
from typing import TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from regbatch.api.rest.auth import Caller
from regbatch.api.rest.errors import status_and_code
from regbatch.errors import ConfigurationError, RegbatchError
from regbatch.services.starts import StartResult, start_batch_async
from regbatch.statuses import BatchStatus

logger = logging.getLogger("regbatch.api")

Created = TypeVar("Created", bound=BaseModel)


async def submit(batch_id: uuid.UUID, caller: Caller) -> StartResult:
    """Queue the batch and submit it to the batch deployment; Prefect trouble is a 503."""
    try:
        return await start_batch_async(batch_id, caller.actor, caller.organisation_id)
    except RegbatchError:
        raise
    except Exception as exc:  # the Prefect API is down or refused the run
        logger.error("submitting batch %s to Prefect failed", batch_id, exc_info=exc)
        raise ConfigurationError(
            f"the Prefect API did not take the run of batch {batch_id} ({type(exc).__name__}); "
            "check PREFECT_API_URL and that the Prefect server is up"
        ) from None


async def not_started(exc: RegbatchError, batch_id: uuid.UUID, caller: Caller) -> JSONResponse:
    """The error response of a request that created `batch_id` but could not start it."""
    from regbatch.services.batches import get_batch

    status_code, code = status_and_code(exc)
    current = (await run_in_threadpool(get_batch, batch_id, caller.organisation_id)).status
    if current == BatchStatus.DRAFT:
        detail = (
            f"batch {batch_id} was created as a draft but not started: {exc}. Start it with "
            f"POST /registration-batches/{batch_id}/start once that is fixed"
        )
    else:
        detail = f"batch {batch_id} was created but its start failed, leaving it {current!r}: {exc}"
    return JSONResponse(
        {"detail": detail, "code": code, "batch_id": str(batch_id)}, status_code=status_code
    )


def started_fields(result: StartResult) -> dict[str, object]:
    """The fields a creating request adds to its answer once the batch is started."""
    return {
        "status": result.status,
        "started_at": result.started_at,
        "first_job_id": result.first_job_id,
        "flow_run_id": result.flow_run_id,
    }


async def start_if_asked(
    created: Created, batch_id: uuid.UUID, caller: Caller, auto_start: bool
) -> Created | JSONResponse:
    """The creating request's answer: `created` as it is, or with the start's fields once the
    batch is submitted, or the error response naming the batch when the start failed."""
    if not auto_start:
        return created
    try:
        started = await submit(batch_id, caller)
    except RegbatchError as exc:
        return await not_started(exc, batch_id, caller)
    return created.model_copy(update=started_fields(started))
