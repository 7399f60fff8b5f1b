"""How a batch's restaurants are dispatched: here (sequential, parallel) or to a work pool.

One loop for every mode: start jobs in the batch's order while fewer than `limit` run, and after
each one ends ask the database what happened. A job that did not finish although nobody asked
to stop hit an orchestration error (a subflow that could not start, a worker that died): it is
put back in the queue and dispatched again, never marked failed. Pause, cancel (asked through
regbatch, or a cancel of the batch's flow run in Prefect) and the breaker stop dispatching;
running restaurants stop at their next step boundary. A lost lease stops everything at once:
every running restaurant is cancelled and the new owner resumes them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.deployments import arun_deployment
from prefect.events import emit_event
from prefect.states import Cancelling

from regbatch.errors import LeaseLostError, LedgerUnavailableError
from regbatch.flows.restaurant import register_restaurant
from regbatch.lease import Lease
from regbatch.ledger import JobRef, Ledger
from regbatch.run_tags import RESTAURANT_TAG
from regbatch.runner import prefect_runs
from regbatch.runner.lease import LeaseKeeper
from regbatch.runner.logs import run_logger
from regbatch.runner.names import note_job_name
from regbatch.statuses import JOB_FINISHED, RequestedAction
from regbatch.step_outcomes import Ended, StepEnd
from regbatch.tasks.steps import state_error

POLL_S = 1.0
PREFECT_POLL_S = 2.0
MAX_ORCHESTRATION_RETRIES = 5
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# After the lease is lost, how long the cancelled restaurants get to unwind.
UNWIND_S = 10.0

RunJob = Callable[[JobRef, Lease], Awaitable[None]]


@dataclass
class Outcome:
    """Why dispatching ended: None when every job finished."""

    stopped: str | None = None
    reason: str | None = None
    requeued: Counter[uuid.UUID] = field(default_factory=Counter)


class Reporter(Protocol):
    """What the dispatcher tells about progress (the batch run's artifacts)."""

    async def job_finished(self, finished: int) -> None: ...

    async def refresh_table(self, force: bool = False) -> None: ...


@dataclass
class Dispatcher:
    """Runs one batch's jobs under the runner's lease (see the module docstring)."""

    ledger: Ledger
    keeper: LeaseKeeper
    batch_name: str
    limit: int
    run_job: RunJob
    reporter: Reporter
    flow_run_id: uuid.UUID | None = None
    on_stop: Callable[[str], Awaitable[None]] | None = None
    on_breaker: Callable[[uuid.UUID, str, str], None] = field(
        default=lambda batch_id, name, reason: _announce_breaker(batch_id, name, reason)
    )
    outcome: Outcome = field(default_factory=Outcome)
    _last_prefect_check: float = 0.0

    @property
    def lease(self) -> Lease:
        return self.keeper.lease

    async def run(self, jobs: list[JobRef]) -> Outcome:
        """Run `jobs` with at most `limit` at a time until all finish or dispatching must stop."""
        queue = deque(jobs)
        running: dict[asyncio.Task[None], JobRef] = {}
        lost = self.keeper.lost
        lost_waiter = asyncio.create_task(lost.wait())
        try:
            while True:
                await self._check_stop()
                self._start(queue, running)
                if not running or lost.is_set():
                    break
                await asyncio.wait(
                    [*running, lost_waiter], timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
                for task in [t for t in running if t.done()]:
                    await self._settle(running.pop(task), task, queue)
        except (LeaseLostError, LedgerUnavailableError) as exc:
            self.keeper.lose(str(exc))
        finally:
            lost_waiter.cancel()
            await _cancel_all(running)  # none left unless the lease was lost or we were stopped
        if self.keeper.lost.is_set():
            self.outcome.stopped, self.outcome.reason = "lease_lost", self.keeper.reason
            return self.outcome
        await self.reporter.refresh_table(force=True)
        return self.outcome

    def _start(self, queue: deque[JobRef], running: dict[asyncio.Task[None], JobRef]) -> None:
        while self.outcome.stopped is None and queue and len(running) < self.limit:
            job = queue.popleft()
            tries = self.outcome.requeued[job.id]
            delay = BACKOFF_S[min(tries, len(BACKOFF_S)) - 1] if tries else 0.0
            running[asyncio.create_task(self._attempt(job, delay))] = job

    async def _attempt(self, job: JobRef, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self.ledger.mark_dispatched(self.lease, job.id)
        await self.run_job(job, self.lease)

    async def _check_stop(self) -> None:
        """Look for a reason to stop dispatching: a pause or cancel, asked here or in Prefect."""
        if self.outcome.stopped is not None:
            return
        await self._check_prefect_cancel()
        action = await self.ledger.requested_action(self.lease)
        if action is None:
            return
        self.outcome.stopped = {RequestedAction.PAUSE: "pause", RequestedAction.CANCEL: "cancel"}[
            action
        ]
        if self.on_stop is not None:
            await self.on_stop(self.outcome.stopped)

    async def _check_prefect_cancel(self) -> None:
        """A cancel of this flow run in the Prefect UI or API is a cancel of the batch.

        Runs served by `regbatch serve` or a worker are killed by Prefect and cancelled by the
        flow's on_cancellation hook; a run called in-process is not, so it looks for itself.
        """
        now = time.monotonic()
        if self.flow_run_id is None or now - self._last_prefect_check < PREFECT_POLL_S:
            return
        self._last_prefect_check = now
        try:
            cancelled = await prefect_runs.was_cancelled(self.flow_run_id)
        except Exception as exc:  # Prefect briefly away: the batch goes on
            run_logger().warning("could not read this flow run's state (%r)", exc)
            return
        if cancelled:
            actor = prefect_runs.prefect_actor(self.flow_run_id)
            run_logger().warning("this flow run was cancelled in Prefect: cancelling the batch")
            await self.ledger.request_cancel(self.lease, actor)

    async def _settle(self, job: JobRef, task: asyncio.Task[None], queue: deque[JobRef]) -> None:
        """The job's run ended: count it, check the breaker, or put it back in the queue."""
        logger = run_logger()
        error = task.exception()
        if error is not None and StepEnd.from_error(error).how is Ended.RUNNER_STOPPED:
            raise error
        may_trip = bool(queue) and self.outcome.stopped is None
        settled = await self.ledger.settle_job(self.lease, job.id, may_trip=may_trip)
        if settled.status in JOB_FINISHED:
            await self.reporter.job_finished(settled.finished)
            if settled.breaker_reason is not None:
                self.outcome.stopped, self.outcome.reason = "breaker", settled.breaker_reason
                logger.error("%s", settled.breaker_reason)
                self.on_breaker(self.lease.batch_id, self.batch_name, settled.breaker_reason)
            return
        if self.outcome.stopped is not None:
            return  # held by the pause or cancel that stopped dispatching
        why = str(error) or repr(error) if error is not None else "its run ended before it did"
        self.outcome.requeued[job.id] += 1
        queue.appendleft(job)
        if self.outcome.requeued[job.id] > MAX_ORCHESTRATION_RETRIES:
            self.outcome.stopped = "orchestration"
            self.outcome.reason = (
                f"{job.restaurant_name} could not be run after {MAX_ORCHESTRATION_RETRIES} "
                f"orchestration retries (the last: {why}); deal with that (the flow run's logs "
                "tell more), then resume the batch"
            )
            logger.error("%s", self.outcome.reason)
            return
        logger.warning("%s did not finish (%s); dispatching it again", job.restaurant_name, why)


class RunNotFinished(Exception):
    """A restaurant's flow run ended without an outcome for its job; the message says why
    (its state's message). The dispatcher puts the job back in the queue, and names this if it
    gives up on it."""


async def _cancel_all(running: dict[asyncio.Task[None], JobRef]) -> None:
    """Cancel every running restaurant at once and give them a moment to unwind."""
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(list(running), timeout=UNWIND_S)
    running.clear()


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


async def run_in_process(job: JobRef, lease: Lease) -> None:
    """The restaurant as a subflow of this flow run (its own flow run page in the UI)."""
    note_job_name(job.id, job.restaurant_name)
    with prefect_runs.tagged(RESTAURANT_TAG):
        state = await register_restaurant(job.id, lease, return_state=True)
    error = await state_error(state)
    if error is not None and StepEnd.from_error(error).how is Ended.RUNNER_STOPPED:
        raise error
    if error is not None:  # ignored by the dispatcher when the job has its outcome
        raise RunNotFinished(str(error) or repr(error)) from error


async def _final_state(flow_run_id: uuid.UUID) -> State:
    """The flow run's state once it is final (polled)."""
    async with get_client() as client:
        while True:
            state = (await client.read_flow_run(flow_run_id)).state
            if state is not None and state.is_final():
                return state
            await asyncio.sleep(POLL_S)


class DistributedRunner:
    """Each restaurant as its own flow run of the `register-restaurant` deployment.

    Workers on the deployment's work pool run them under this runner's lease; this flow waits
    for their runs to end and reads the outcome from the database. A run submitted under an
    earlier lease (before a takeover) is fenced off: it is cancelled and submitted again.
    """

    def __init__(self, ledger: Ledger, deployment: str) -> None:
        self.ledger, self.deployment = ledger, deployment
        self.active: dict[uuid.UUID, uuid.UUID] = {}

    async def __call__(self, job: JobRef, lease: Lease) -> None:
        await self._retire(job)
        flow_run_id = await self._submit(job, lease)
        self.active[job.id] = flow_run_id
        try:
            state = await _final_state(flow_run_id)
        finally:
            self.active.pop(job.id, None)
        if not state.is_completed():  # ignored by the dispatcher when the job has its outcome
            raise RunNotFinished(state.message or f"its flow run ended {state.name}")

    async def _retire(self, job: JobRef) -> None:
        """A run left by a previous owner is fenced already; cancel it so its worker stops."""
        if job.flow_run_id is None:
            return
        async with get_client() as client:
            run = await client.read_flow_run(job.flow_run_id)
            if run.state is not None and not run.state.is_final():
                await client.set_flow_run_state(
                    job.flow_run_id,
                    Cancelling(message="the batch was taken over by another runner"),
                    force=True,
                )

    async def _submit(self, job: JobRef, lease: Lease) -> uuid.UUID:
        run = await arun_deployment(
            self.deployment,
            parameters={"job_id": str(job.id), "lease": lease.model_dump(mode="json")},
            timeout=0,
            flow_run_name=job.restaurant_name,
            as_subflow=True,
        )
        await self.ledger.remember_flow_run(lease, job.id, run.id)
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
