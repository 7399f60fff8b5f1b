"""How a batch's restaurants are dispatched: here (sequential, parallel) or to a work pool.

One loop for every mode: start jobs in the batch's order while fewer than `limit` run, and after
each one ends ask the database what happened. A job that did not finish although nobody asked
to stop hit an orchestration error (a subflow that could not start, a worker that died): it is
put back in the queue and dispatched again, never marked failed. Pause, cancel, the breaker and a
lost lease stop dispatching; running restaurants stop at their next step boundary.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prefect.client.orchestration import get_client
from prefect.deployments import arun_deployment
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.states import Cancelling

from flows.restaurant import register_restaurant
from regbatch.statuses import JOB_FINISHED, RequestedAction
from services import execution, lifecycle
from services.execution import JobRef
from services.lease import LeaseKeeper
from tasks.artifacts import ProgressReporter

POLL_S = 1.0
MAX_ORCHESTRATION_RETRIES = 5
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)

RunJob = Callable[[JobRef], Awaitable[None]]


@dataclass
class Outcome:
    """Why dispatching ended: None when every job finished."""

    stopped: str | None = None
    reason: str | None = None
    requeued: Counter[uuid.UUID] = field(default_factory=Counter)


async def dispatch(
    batch_id: uuid.UUID,
    batch_name: str,
    jobs: list[JobRef],
    limit: int,
    run_job: RunJob,
    lease: LeaseKeeper,
    reporter: ProgressReporter,
    on_stop: Callable[[str], Awaitable[None]] | None = None,
) -> Outcome:
    """Run `jobs` with at most `limit` at a time until all finish or dispatching must stop."""
    logger = get_run_logger()
    queue = deque(jobs)
    running: dict[asyncio.Task[None], JobRef] = {}
    outcome = Outcome()

    async def attempt(job: JobRef, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await execution.mark_dispatched(job.id)
        await run_job(job)

    while True:
        if outcome.stopped is None:
            outcome.stopped = await _stop_reason(batch_id, lease)
            if outcome.stopped is not None and on_stop is not None:
                await on_stop(outcome.stopped)
        while outcome.stopped is None and queue and len(running) < limit:
            job = queue.popleft()
            tries = outcome.requeued[job.id]
            delay = BACKOFF_S[min(tries, len(BACKOFF_S)) - 1] if tries else 0.0
            running[asyncio.create_task(attempt(job, delay))] = job
        if not running:
            break
        done, _ = await asyncio.wait(running, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            job = running.pop(task)
            if task.exception() is not None:
                logger.warning(
                    "%s: could not run (%r); it goes back in the queue",
                    job.restaurant_name,
                    task.exception(),
                )
            settled = await lifecycle.settle_job(
                batch_id, job.id, may_trip=bool(queue) and outcome.stopped is None
            )
            if settled.status in JOB_FINISHED:
                await reporter.job_finished(settled.finished)
                if settled.breaker_reason is not None:
                    outcome.stopped, outcome.reason = "breaker", settled.breaker_reason
                    logger.error("%s", settled.breaker_reason)
                    _announce_breaker(batch_id, batch_name, settled.breaker_reason)
                continue
            if outcome.stopped is not None:
                continue  # held by the pause or cancel that stopped dispatching
            outcome.requeued[job.id] += 1
            if outcome.requeued[job.id] > MAX_ORCHESTRATION_RETRIES:
                outcome.stopped = "orchestration"
                outcome.reason = (
                    f"{job.restaurant_name} could not be run after "
                    f"{MAX_ORCHESTRATION_RETRIES} orchestration retries; see the "
                    "flow run's logs, then resume the batch"
                )
                logger.error("%s", outcome.reason)
                queue.appendleft(job)
                continue
            logger.warning(
                "%s did not finish (orchestration error); dispatching it again", job.restaurant_name
            )
            queue.appendleft(job)
    await reporter.refresh_table(force=True)
    return outcome


async def _stop_reason(batch_id: uuid.UUID, lease: LeaseKeeper) -> str | None:
    if lease.lost.is_set():
        return "lease_lost"
    action = await execution.requested_action(batch_id)
    if action is None:
        return None
    return {RequestedAction.PAUSE: "pause", RequestedAction.CANCEL: "cancel"}[
        RequestedAction(action)
    ]


def _announce_breaker(batch_id: uuid.UUID, batch_name: str, reason: str) -> None:
    """A Prefect event, so an automation can alert someone."""
    emit_event(
        event="regbatch.batch.breaker-tripped",
        resource={
            "prefect.resource.id": f"regbatch.batch.{batch_id}",
            "prefect.resource.name": batch_name,
        },
        payload={"reason": reason},
    )


async def run_in_process(job: JobRef) -> None:
    """The restaurant as a subflow of this flow run (its own flow run page in the UI)."""
    execution.note_job_name(job.id, job.restaurant_name)
    await register_restaurant(job.id, return_state=True)


class DistributedRunner:
    """Each restaurant as its own flow run of the `register-restaurant` deployment.

    Workers on the deployment's work pool run them; this flow waits for their runs to end and
    reads the outcome from the database. A job whose run is still alive after a takeover is
    awaited, not submitted again.
    """

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self.active: dict[uuid.UUID, uuid.UUID] = {}

    async def __call__(self, job: JobRef) -> None:
        flow_run_id = await self._existing_run(job) or await self._submit(job)
        self.active[job.id] = flow_run_id
        try:
            async with get_client() as client:
                while True:
                    run = await client.read_flow_run(flow_run_id)
                    if run.state is not None and run.state.is_final():
                        return
                    await asyncio.sleep(POLL_S)
        finally:
            self.active.pop(job.id, None)

    async def _existing_run(self, job: JobRef) -> uuid.UUID | None:
        if job.flow_run_id is None:
            return None
        async with get_client() as client:
            run = await client.read_flow_run(job.flow_run_id)
        if run.state is not None and not run.state.is_final():
            return job.flow_run_id
        return None

    async def _submit(self, job: JobRef) -> uuid.UUID:
        run = await arun_deployment(
            self.deployment,
            parameters={"job_id": str(job.id)},
            timeout=0,
            flow_run_name=job.restaurant_name,
            as_subflow=True,
        )
        await execution.remember_flow_run(job.id, run.id)
        return run.id

    async def cancel_running(self, reason: str) -> None:
        """Ask Prefect to cancel every run still going (the worker kills its process)."""
        if reason != "cancel":
            return
        async with get_client() as client:
            for flow_run_id in list(self.active.values()):
                await client.set_flow_run_state(
                    flow_run_id, Cancelling(message="batch cancelled"), force=False
                )
