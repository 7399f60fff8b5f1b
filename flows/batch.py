"""`registration_batch(batch_id)`: the batch flow. Start here to follow a batch.

1. take the batch (in progress, under this runner's lease; a stalled batch is taken over);
2. dispatch its unfinished restaurants in its execution mode (flows/dispatch.py): each is a
   `register_restaurant` subflow (flows/restaurant.py), or a deployment run on a work pool;
3. end it: completed or failed by the seed's rule, paused (by a user or the breaker), or
   cancelled; write the summary artifact.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelled, Completed, Failed, State

from flows.dispatch import DistributedRunner, dispatch, run_in_process
from regbatch.flow_params import BatchRun
from regbatch.settings import get_settings
from regbatch.statuses import BatchStatus, ExecutionMode
from services import execution, lifecycle
from services.batches import batch_name, create_batch_async
from services.lease import LeaseKeeper
from tasks.artifacts import ProgressReporter
from tasks.platform_client import close_platform_client


def _run_name() -> str:
    run = flow_run.parameters.get("run") or {}
    get = run.get if isinstance(run, dict) else lambda key: getattr(run, key, None)
    if get("batch_id"):
        try:
            return f"batch: {batch_name(str(get('batch_id')))}"
        except Exception:  # a name is never worth failing a run for
            return f"batch {get('batch_id')}"
    return f"batch: {get('name') or 'new'}"


def _flow_run_id() -> uuid.UUID | None:
    return uuid.UUID(flow_run.id) if flow_run.id else None


def embedded_prefect() -> bool:
    """True when Prefect runs on its ephemeral SQLite server (no PREFECT_API_URL)."""
    return not PREFECT_API_URL.value()


def concurrency_limit(mode: str, concurrency: int) -> int:
    """How many restaurants run at once; held down on the embedded Prefect server.

    Concurrent subflows on Prefect's SQLite server meet "database is locked" errors; they are
    retried, never lost, but beyond a few at a time they only slow the batch down.
    """
    if mode == ExecutionMode.SEQUENTIAL:
        return 1
    if mode == ExecutionMode.PARALLEL and embedded_prefect():
        return min(concurrency, get_settings().embedded_max_concurrency)
    return concurrency


@flow(name="registration-batch", flow_run_name=_run_name, retries=0, persist_result=False)
async def registration_batch(run: BatchRun) -> State[Any]:
    """Register a batch of restaurants: every unfinished one, in the batch's execution mode."""
    logger = get_run_logger()
    settings = get_settings()
    owner = lifecycle.runner_identity(flow_run.id)
    batch_id = run.batch_id or await create_batch_async(run)
    await lifecycle.begin_run(
        batch_id, owner, settings.lease_seconds, run.started_by, _flow_run_id()
    )
    try:
        detail = await execution.batch_detail_async(batch_id)
        jobs = await execution.unfinished_jobs(batch_id)
        limit = concurrency_limit(detail.execution_mode, detail.concurrency)
        if limit < min(detail.concurrency, len(jobs)) and detail.execution_mode == (
            ExecutionMode.PARALLEL
        ):
            logger.warning(
                "Prefect runs on its embedded SQLite server: %d restaurants at a time "
                "instead of %d (set PREFECT_API_URL to a Prefect server on "
                "PostgreSQL for more)",
                limit,
                detail.concurrency,
            )
        logger.info(
            "%s: %d of %d restaurants to run, %s, %d at a time",
            detail.name,
            len(jobs),
            detail.total,
            detail.execution_mode,
            limit,
        )
        reporter = ProgressReporter(batch_id, detail.total)
        await reporter.start(detail.total - len(jobs))
        with LeaseKeeper(batch_id, owner, settings.lease_seconds) as lease:
            if detail.execution_mode == ExecutionMode.DISTRIBUTED:
                runner = DistributedRunner(settings.restaurant_deployment)
                outcome = await dispatch(
                    batch_id,
                    detail.name,
                    jobs,
                    limit,
                    runner,
                    lease,
                    reporter,
                    on_stop=runner.cancel_running,
                )
            else:
                outcome = await dispatch(
                    batch_id, detail.name, jobs, limit, run_in_process, lease, reporter
                )
            if outcome.stopped == "lease_lost":
                return Cancelled(
                    name="Superseded",
                    message="another runner took this batch over; this run stopped dispatching",
                )
            if outcome.stopped == "orchestration":
                await lifecycle.request_pause_for(batch_id, outcome.reason or "orchestration")
            final = await lifecycle.finish_run(batch_id, owner)
        await reporter.finish(final)
        await _notify(batch_id)
    finally:
        await close_platform_client()
    logger.info(
        "%s: %s (%d completed, %d failed, %d cancelled of %d)",
        final.name,
        final.status,
        final.completed,
        final.failed,
        final.cancelled,
        final.total,
    )
    return final_state(final.status, final.name, final.pause_reason)


async def _notify(batch_id: uuid.UUID) -> None:
    """Deliver the batch's outcome to its organisation's webhooks; never fails the run."""
    from services.webhooks import deliver_batch_event_async

    try:
        results = await deliver_batch_event_async(batch_id)
    except Exception:
        get_run_logger().exception("webhook delivery for batch %s failed", batch_id)
        return
    for result in results:
        if not result.delivered:
            get_run_logger().warning(
                "webhook %s not delivered after %d attempts",
                result.subscription_id,
                result.attempts,
            )


def final_state(status: str, name: str, pause_reason: str | None) -> State[Any]:
    """The flow run's final state, named after the batch's status."""
    if status == BatchStatus.COMPLETED:
        return Completed(message=f"{name}: completed")
    if status == BatchStatus.FAILED:
        return Failed(message=f"{name}: failed (more than half of its restaurants failed)")
    if status == BatchStatus.PAUSED:
        return Cancelled(
            name="Paused",
            message=f"{name}: {pause_reason or 'paused'}; resume it to continue where it stopped",
        )
    return Cancelled(message=f"{name}: cancelled")
