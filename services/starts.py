"""Start a batch through Prefect: a flow run of the `registration-batch` deployment.

Whatever serves that deployment (`regbatch serve`, or process workers on the `regbatch` work
pool after `prefect deploy --all`) runs it; the batch is `pending` until a runner takes it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from regbatch.audit import Operation
from regbatch.db.batches import get_batch as load_batch
from regbatch.db.batches import select_jobs
from regbatch.db.engine import session_scope
from regbatch.db.lifecycle import resume
from regbatch.db.oplog import append_log
from regbatch.db.types import utcnow
from regbatch.errors import (
    ConfigurationError,
    ConflictError,
    PrefectUnavailableError,
    RegbatchError,
)
from regbatch.services.batches import parse_uuid
from regbatch.settings import get_settings
from regbatch.statuses import BatchStatus, check_transition


class StartResult(BaseModel):
    """What starting a batch returns (the seed's `{started_at, first_job_id}`, and more)."""

    batch_id: uuid.UUID
    status: BatchStatus
    started_at: datetime
    first_job_id: uuid.UUID | None
    flow_run_id: uuid.UUID
    deployment: str


def _mark_pending(
    batch_id: uuid.UUID, actor: str, organisation_id: uuid.UUID | None
) -> tuple[BatchStatus, uuid.UUID | None]:
    """Queue the batch; returns its previous status and its first job.

    A paused batch is resumed (its breaker starts a fresh window, the resume is logged); the
    start itself is logged by the runner when it takes the batch, with `actor`.
    """
    with session_scope() as session:
        batch = load_batch(session, batch_id, organisation_id, lock=True)
        previous = BatchStatus(batch.status)
        if previous == BatchStatus.PAUSED:
            resume(session, batch_id, actor, organisation_id)
        elif previous == BatchStatus.DRAFT:
            check_transition("batch", previous, BatchStatus.PENDING, f"batch {batch_id}")
            batch.status = BatchStatus.PENDING
        else:
            raise ConflictError(
                f"batch {batch_id} is {previous.value!r}; only a draft or paused batch can be "
                "started (a pending one is already queued, an in-progress one is running)"
            )
        first = session.scalars(select_jobs(batch_id).limit(1)).first()
        return previous, first.id if first else None


def _remember(batch_id: uuid.UUID, flow_run_id: uuid.UUID, actor: str, deployment: str) -> None:
    """The batch was submitted: remember its flow run and log who queued it where."""
    with session_scope() as session:
        batch = load_batch(session, batch_id)
        batch.flow_run_id = flow_run_id
        append_log(
            session,
            organisation_id=batch.organisation_id,
            batch_id=batch_id,
            operation=Operation.BATCH_QUEUED,
            actor=actor,
            details={"flow_run_id": str(flow_run_id), "deployment": deployment},
        )


async def start_batch_async(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> StartResult:
    """Queue the batch (pending) and submit it to the `registration-batch` deployment."""
    from prefect.deployments import arun_deployment
    from prefect.exceptions import ObjectNotFound

    batch_uuid = parse_uuid(batch_id, "batch_id")
    deployment = get_settings().batch_deployment
    previous, first_job = await asyncio.to_thread(_mark_pending, batch_uuid, actor, organisation_id)
    parameters: dict[str, Any] = {"run": {"batch_id": str(batch_uuid), "started_by": actor}}
    try:
        flow_run = await arun_deployment(
            deployment, parameters=parameters, timeout=0, as_subflow=False
        )
    except ObjectNotFound:
        await asyncio.to_thread(_unqueue, batch_uuid, previous)
        raise ConfigurationError(
            f"deployment {deployment!r} does not exist on the Prefect server; run `regbatch "
            "serve` (or `prefect deploy --all` and a worker), or set REGBATCH_BATCH_DEPLOYMENT"
        ) from None
    except BaseException as exc:  # nothing was queued: the batch goes back to what it was
        await asyncio.to_thread(_unqueue, batch_uuid, previous)
        refusal = _prefect_refusal(exc, deployment)
        if refusal is None:
            raise
        raise refusal from exc
    await asyncio.to_thread(_remember, batch_uuid, flow_run.id, actor, deployment)
    return StartResult(
        batch_id=batch_uuid,
        status=BatchStatus.PENDING,
        started_at=utcnow(),
        first_job_id=first_job,
        flow_run_id=flow_run.id,
        deployment=deployment,
    )


def _prefect_refusal(exc: BaseException, deployment: str) -> RegbatchError | None:
    """What a failed submission means for the user; None for a fault of ours (re-raised)."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value() or "Prefect's embedded server"
    if isinstance(exc, httpx.TransportError) or (
        isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code >= 500
    ):
        return PrefectUnavailableError(
            f"the Prefect API at {api} could not take the run of {deployment!r} "
            f"({type(exc).__name__}); check that the Prefect server is up and that "
            "PREFECT_API_URL points at it, then start the batch again"
        )
    if isinstance(exc, PrefectHTTPStatusError):
        detail = exc.response.text[:300]
        return ConfigurationError(
            f"the Prefect API refused the run of {deployment!r} ({exc.response.status_code}: "
            f"{detail}); check that the deployment is regbatch's (`regbatch serve` or "
            "`prefect deploy --all` recreates it), then start the batch again"
        )
    return None


def _unqueue(batch_id: uuid.UUID, previous: BatchStatus) -> None:
    """Undo the queueing when nothing could be submitted: a start never half-happens."""
    with session_scope() as session:
        batch = load_batch(session, batch_id, lock=True)
        if batch.status == BatchStatus.PENDING:
            check_transition("batch", batch.status, previous, f"batch {batch_id}")
            batch.status = previous


def start_batch(
    batch_id: str | uuid.UUID, actor: str = "user", organisation_id: uuid.UUID | None = None
) -> StartResult:
    """Blocking form of `start_batch_async`."""
    return asyncio.run(start_batch_async(batch_id, actor, organisation_id))
