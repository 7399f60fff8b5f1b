"""`registration_batch(batch_id)`: the batch flow. Start here to follow a batch.

1. take the batch: in progress under this runner's lease, with a new fencing token. A stalled
   batch (its runner's lease expired) is taken over, and the previous runner's flow runs are
   marked Crashed; a takeover carries out a cancel or pause its operator had asked for instead;
2. dispatch its unfinished restaurants in its execution mode (flows/dispatch.py): each is a
   `register_restaurant` subflow (flows/restaurant.py), or a deployment run on a work pool;
3. end it: completed or failed by the seed's rule, paused (by a user or the breaker), or
   cancelled; write the summary artifact. A runner that lost its lease stops at once instead.

Cancelling this flow run in the Prefect UI or API cancels the batch, whoever runs it: the
dispatcher sees it (in-process runs), or the on_cancellation hook does (runs that Prefect kills).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run as this_run
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelled, Completed, Failed, State

from regbatch.errors import LeaseLostError, LedgerUnavailableError, PluginError
from regbatch.flow_params import NOTHING_TO_RUN, BatchRun
from regbatch.flows.dispatch import Dispatcher, DistributedRunner, run_in_process
from regbatch.heap import freeze_start_up_heap
from regbatch.lease import Lease
from regbatch.ledger import RunStart
from regbatch.plugins import current_registry, graph_from_record, missing_handlers_message
from regbatch.runner import prefect_runs
from regbatch.runner.cancellation import cancel_from_orchestrator
from regbatch.runner.lease import LeaseKeeper, runner_identity
from regbatch.runner.ledger import ledger
from regbatch.runner.logs import log_pause, run_logger
from regbatch.runner.names import batch_name
from regbatch.runner.platform import platform_session
from regbatch.settings import get_settings
from regbatch.statuses import BatchStatus, ExecutionMode
from regbatch.tasks.artifacts import ProgressReporter
from regbatch.tasks.batches import create_batch_from_run
from regbatch.tasks.webhooks import announce_batch_outcome, notify_batch_outcome
from regbatch.views import BatchView

log = logging.getLogger(__name__)
EMPTY_FORM = BatchRun()  # Quick run's parameters: the flow refuses them with NOTHING_TO_RUN


def _run_name() -> str:
    run = this_run.parameters.get("run") or {}
    get = run.get if isinstance(run, dict) else lambda key: getattr(run, key, None)
    if get("batch_id"):
        try:
            return f"batch: {batch_name(uuid.UUID(str(get('batch_id'))))}"
        except Exception:  # a name is never worth failing a run for
            return f"batch {get('batch_id')}"
    return f"batch: {get('name') or 'nothing to run'}"  # only the empty form has no name


def _flow_run_id() -> uuid.UUID | None:
    return uuid.UUID(this_run.id) if this_run.id else None


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


def cancel_batch_of_run(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    """on_cancellation: Prefect cancelled this flow run (UI or API), so the batch is cancelled.

    Runs where Prefect kills the run's process (`regbatch serve`, workers), after the kill: the
    batch is cancelled at once, its lease ends (fencing off anything the process left) and its
    restaurant subflows, which died with the process, are marked Cancelled. Prefect calls hooks
    with these keyword names.
    """
    actor = prefect_runs.prefect_actor(flow_run.id)
    try:
        batch_id = cancel_from_orchestrator(flow_run.id, actor)
    except Exception:
        log.exception("could not cancel the batch of flow run %s", flow_run.id)
        return
    if batch_id is not None:
        log.warning("batch %s cancelled: its flow run was cancelled in Prefect", batch_id)
        announce_batch_outcome(batch_id)  # nobody else will: the run that would have is gone
    try:
        prefect_runs.cancel_subflows(flow_run.id, "the batch's flow run was cancelled")
    except Exception:
        log.warning("could not mark the subflows of %s cancelled", flow_run.id, exc_info=True)


@flow(
    name="registration-batch",
    flow_run_name=_run_name,
    retries=0,
    persist_result=False,
    on_cancellation=[cancel_batch_of_run],
)
async def registration_batch(run: BatchRun = EMPTY_FORM) -> State[Any]:
    """Register a batch of restaurants: every unfinished one, in the batch's execution mode.

    With the empty form (the UI's Quick run) it starts nothing and fails, saying what to fill in.

    Args:
        run: an existing batch by id, or the organisation, name and restaurants of a new one.
    """
    if run.chooses_nothing:
        run_logger().error("%s", NOTHING_TO_RUN)
        return Failed(message=NOTHING_TO_RUN)
    batch_id = run.batch_id or await create_batch_from_run(run)
    await _check_handlers(batch_id)
    lease = await _take(batch_id, run.started_by)
    if isinstance(lease, BatchView):  # a takeover carried out an operator's cancel or pause
        return final_state(lease.status, lease.name, lease.pause_reason)
    try:
        async with platform_session():
            final = await _run(lease)
    except (LeaseLostError, LedgerUnavailableError) as exc:
        # This runner stopped without ending the batch; its new owner (or the next) goes on.
        run_logger().error("%s", exc)
        raise
    return final_state(final.status, final.name, final.pause_reason)


async def _check_handlers(batch_id: uuid.UUID) -> None:
    """Pre-flight: PluginError, before anything starts, when this process lacks a step handler
    the batch's recorded graph needs (workers check again for their own restaurants)."""
    registry = current_registry()
    detail = await ledger().batch_view(batch_id)
    missing = registry.missing(graph_from_record(detail.step_graph, registry))
    if missing:
        raise PluginError(missing_handlers_message(f"batch {detail.name} ({batch_id})", missing))


async def _take(batch_id: uuid.UUID, started_by: str) -> Lease | BatchView:
    """Begin the run under a new lease; after a takeover, end the previous runner's runs."""
    own_run = _flow_run_id()
    status, previous_run = await ledger().previous_run(batch_id)
    cancelled_by = None
    if status == BatchStatus.IN_PROGRESS and previous_run not in (None, own_run):
        assert previous_run is not None
        if await _safely(prefect_runs.was_cancelled(previous_run), default=False):
            cancelled_by = prefect_runs.prefect_actor(previous_run)
    owner = runner_identity(own_run)
    start = await ledger().begin_run(batch_id, owner, started_by, own_run, cancelled_by)
    if start.previous_flow_run_id not in (None, own_run):
        assert start.previous_flow_run_id is not None
        await _end_previous_runs(batch_id, start, cancelled_by)
    if start.lease is None:
        return await ledger().batch_view(batch_id)
    return start.lease


async def _end_previous_runs(
    batch_id: uuid.UUID, start: RunStart, cancelled_by: str | None
) -> None:
    """The runner this one took over from left flow runs unfinished in Prefect: end them."""
    assert start.previous_flow_run_id is not None
    message = (
        "cancelled in Prefect; the batch is cancelled"
        if cancelled_by
        else f"runner {start.previous_owner} lost batch {batch_id} (its lease expired)"
    )
    ended = await _safely(
        prefect_runs.crash_runs(
            start.previous_flow_run_id, message, cancelled=cancelled_by is not None
        ),
        0,
    )
    run_logger().warning(
        "took batch %s over from %s; ended %d of its flow runs left unfinished in Prefect",
        batch_id,
        start.previous_owner,
        ended,
    )


async def _run(lease: Lease) -> BatchView:
    """Dispatch the batch's unfinished restaurants and end the run (LeaseLostError: stopped)."""
    freeze_start_up_heap(_flow_run_id())  # in a runner process of our own (regbatch.heap)
    detail = await ledger().batch_view(lease.batch_id)
    jobs = await ledger().unfinished_jobs(lease.batch_id)
    limit = concurrency_limit(detail.execution_mode, detail.concurrency)
    _log_start(detail, len(jobs), limit)
    reporter = ProgressReporter(lease.batch_id, detail.name, detail.total)
    await reporter.start(detail.total - len(jobs))
    settings = get_settings()
    async with LeaseKeeper(ledger(), lease, settings.lease_seconds) as keeper:
        dispatcher = Dispatcher(
            ledger(), keeper, detail.name, limit, run_in_process, reporter, _flow_run_id()
        )
        if detail.execution_mode == ExecutionMode.DISTRIBUTED:
            distributed = DistributedRunner(ledger(), settings.restaurant_deployment)
            dispatcher.run_job, dispatcher.on_stop = distributed, distributed.cancel_running
        outcome = await dispatcher.run(jobs)
        if outcome.stopped == "lease_lost":
            raise LeaseLostError(outcome.reason or f"the lease on batch {lease.batch_id} was lost")
        if outcome.stopped == "orchestration":
            await ledger().request_pause(lease, outcome.reason or "orchestration")
        final = await ledger().finish_run(lease)
    await reporter.finish(final)
    await _settle_subflows()
    await _notify(lease.batch_id)
    run_logger().info(
        "%s: %s (%d completed, %d failed, %d cancelled of %d)",
        final.name,
        final.status,
        final.completed,
        final.failed,
        final.cancelled,
        final.total,
    )
    return final


def _log_start(detail: BatchView, to_run: int, limit: int) -> None:
    logger = run_logger()
    if detail.execution_mode == ExecutionMode.PARALLEL and limit < min(detail.concurrency, to_run):
        logger.warning(
            "Prefect runs on its embedded SQLite server: %d restaurants at a time instead of "
            "%d (set PREFECT_API_URL to a Prefect server on PostgreSQL for more)",
            limit,
            detail.concurrency,
        )
    logger.info(
        "%s: %d of %d restaurants to run, %s, %d at a time",
        detail.name,
        to_run,
        detail.total,
        detail.execution_mode,
        limit,
    )


async def _settle_subflows() -> None:
    """Restaurant subflows Prefect still shows unfinished (its API was away) are marked Crashed."""
    own_run = _flow_run_id()
    if own_run is not None:
        message = "left unfinished in Prefect; the batch's ledger has the restaurant's outcome"
        await _safely(prefect_runs.crash_runs(own_run, message, itself=False), 0)


async def _safely(call: Any, default: Any) -> Any:
    """Await a best-effort Prefect call: a Prefect outage is logged, never fatal here."""
    try:
        return await call
    except Exception as exc:
        run_logger().warning("Prefect call failed (%r); going on", exc)
        return default


async def _notify(batch_id: uuid.UUID) -> None:
    """Deliver the batch's outcome to its organisation's webhooks; never fails the run."""
    # Each delivery is a task run of this flow run; failures are logged there, never raised.
    await notify_batch_outcome(batch_id)


def final_state(status: str, name: str, pause_reason: str | None) -> State[Any]:
    """The flow run's final state, named after the batch's status."""
    if status == BatchStatus.COMPLETED:
        return Completed(message=f"{name}: completed")
    if status == BatchStatus.FAILED:
        return Failed(message=f"{name}: failed (more than half of its restaurants failed)")
    if status == BatchStatus.PAUSED:
        message = f"{name}: {pause_reason or 'paused'}; resume it to continue where it stopped"
        log_pause(f"Batch paused, not failed. {message}")
        return Cancelled(name="Paused", message=message)
    return Cancelled(message=f"{name}: cancelled")
