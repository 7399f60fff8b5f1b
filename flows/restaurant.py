"""`register_restaurant(job_id, lease)`: one restaurant's steps, as a Prefect (sub)flow.

The flow only orchestrates (`JobRun`): it asks `regbatch.planning` what runs next, starts those
step tasks concurrently where the graph allows, records skips with their reasons, and ends the
job from its steps' outcome. Steps already completed are never run again (resume); a failed job
re-runs only its failed steps and the steps they blocked. Pause and cancel requests on the batch
are honoured at step boundaries: running steps finish, nothing new starts.

Every write states the batch runner's `lease`. When the lease is lost (another runner took the
batch over) or the ledger is unreachable, every step still running is cancelled at once and the
error ends this run: the batch's new owner resumes the job. A step that ended without an outcome
(an orchestration error) leaves the job unfinished, and the batch runner dispatches it again.

`JobRun` needs no Prefect: it is given a ledger and a way to run a step (here, the step's Prefect
task), so the orchestration unit tests drive it with an in-memory ledger and fake steps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State
from pydantic import ValidationError

from regbatch.config import RegistrationConfig
from regbatch.errors import ConfigurationError, PluginError
from regbatch.lease import Lease
from regbatch.ledger import JobPlan, Ledger
from regbatch.planning import Run, Skip, StepState, next_decisions
from regbatch.plugins import current_registry, missing_handlers_message
from regbatch.runner.ledger import ledger
from regbatch.runner.logs import log_pause, run_logger
from regbatch.runner.names import restaurant_name_for_job
from regbatch.runner.platform import platform_session
from regbatch.statuses import JOB_FINISHED, JobStatus, RequestedAction, StepStatus
from regbatch.step_outcomes import Ended, StepEnd
from regbatch.steps import StepGraph
from regbatch.tasks.steps import run_step_task

NO_LEASE = (
    "register-restaurant runs one restaurant for its batch's runner and needs that runner's "
    "lease; start the batch instead (`regbatch batch start BATCH_ID`, or the "
    "registration-batch deployment)"
)

RunStep = Callable[[str], Coroutine[Any, Any, StepEnd]]


def refuse_without_handlers(plan: JobPlan) -> None:
    """PluginError, before any step runs, when this process lacks a handler the restaurant's
    unfinished steps need (rather than running the built-in step in its place)."""
    kind = plan.config.restaurant.restaurant_type
    needed = {
        ref
        for spec in plan.graph.steps
        if plan.states[spec.key].status != StepStatus.COMPLETED
        and (ref := plan.graph.handler_for(spec.key, kind)) is not None
    }
    registry = current_registry()
    missing = sorted((r for r in needed if registry.resolve(r) is None), key=str)
    if missing:
        subject = f"restaurant {plan.restaurant_name} (job {plan.job_id})"
        raise PluginError(missing_handlers_message(subject, missing))


def _run_name() -> str:
    job_id = flow_run.parameters.get("job_id")
    try:
        return restaurant_name_for_job(uuid.UUID(str(job_id)))
    except Exception:  # a name is never worth failing a run for
        return f"job {job_id}"


def run_arguments(job_id: object, lease: object) -> tuple[uuid.UUID, Lease]:
    """The run's job id and lease, as the batch's process gives them (a UUID and a Lease) or a
    deployment run does (their JSON forms); ConfigurationError naming the bad one."""
    if lease is None or job_id is None:
        raise ConfigurationError(NO_LEASE)
    try:
        job = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    except ValueError:
        raise ConfigurationError(
            f"register-restaurant: job_id {str(job_id)[:80]!r} is not a job id (a UUID); "
            "the batch's runner gives it: start the batch instead"
        ) from None
    try:
        held = lease if isinstance(lease, Lease) else Lease.model_validate(lease)
    except ValidationError as exc:
        raise ConfigurationError(
            f"register-restaurant: lease {str(lease)[:120]!r} is not a runner's lease "
            f"({exc.errors()[0]['msg']}); the batch's runner gives it: start the batch instead"
        ) from None
    return job, held


# validate_parameters=False: Prefect would build a pydantic model of the signature for every
# restaurant (about 2.5 % of the runner's CPU); `run_arguments` checks the two parameters.
@flow(
    name="register-restaurant",
    flow_run_name=_run_name,
    retries=0,
    persist_result=False,
    validate_parameters=False,
)
async def register_restaurant(
    job_id: uuid.UUID | None = None, lease: Lease | None = None
) -> State[Any]:
    """Register one restaurant: run its steps in dependency order, resuming from the ledger.

    Args:
        job_id: the restaurant's job in its batch; a batch's runner gives it, with its lease.
        lease: the batch runner's lease (without it, the run is refused: start the batch).
    """
    job_id, lease = run_arguments(job_id, lease)
    plan = await ledger().begin_job(lease, job_id)
    if plan.status in JOB_FINISHED:
        return Completed(message=f"job already {plan.status}; nothing to do")
    refuse_without_handlers(plan)

    async def run_step(key: str) -> StepEnd:
        return await run_step_task(plan.graph.spec(key), plan.config, lease, job_id)

    run = JobRun(ledger(), lease, plan, run_step)
    async with platform_session():  # the batch's, when run in the batch's process
        await run.drive()
    return await run.end()


@dataclass
class JobRun:
    """One run of a job: its steps' states as this run knows them, and why it stopped."""

    ledger: Ledger
    lease: Lease
    plan: JobPlan
    run_step: RunStep
    states: dict[str, StepState] = field(init=False)
    stop: RequestedAction | None = None
    interrupted: list[str] = field(default_factory=list)
    running: dict[asyncio.Task[StepEnd], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = dict(self.plan.states)

    async def drive(self) -> None:
        """Start steps as the graph allows until none is left or the batch asked to stop."""
        try:
            while True:
                if self.stop is None and not self.interrupted:
                    await self._start_ready_steps()
                if not self.running:
                    return
                done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    await self._settle(self.running.pop(finished), finished)
        finally:
            await _cancel_all(self.running)

    async def _start_ready_steps(self) -> None:
        """Start (or skip) every step the graph allows now, unless the batch asked to stop.

        The batch's request is read only when there is something to start: most loops only
        take in a step's end while its siblings still run. A request that comes after this read
        is still honoured: the ledger refuses the attempt's start (`hold_to_start`).
        """
        decisions = _decide(self.states, self.plan.config, self.plan.graph)
        if not decisions:
            return
        self.stop = await self.ledger.requested_action(self.lease)
        if self.stop is not None:
            return
        skips = [d for d in decisions if isinstance(d, Skip)]
        if skips:
            await self.ledger.record_skips(
                self.lease, self.plan.job_id, [(d.key, d.reason, d.blocked_by) for d in skips]
            )
        for decision in decisions:
            if isinstance(decision, Skip):
                self.states[decision.key] = StepState(
                    StepStatus.SKIPPED, blocked_by=decision.blocked_by
                )
                continue
            self.states[decision.key] = StepState(StepStatus.IN_PROGRESS)
            self.running[asyncio.create_task(self.run_step(decision.key))] = decision.key

    async def _settle(self, key: str, finished: asyncio.Task[StepEnd]) -> None:
        """Take in how a step task ended, by the one rule of `regbatch.step_outcomes`."""
        error = finished.exception()  # the step could not even be run (e.g. Prefect's API)
        end = finished.result() if error is None else StepEnd.from_error(error)
        if end.how is Ended.COMPLETED:
            self.states[key] = StepState(StepStatus.COMPLETED, end.result)
        elif end.how is Ended.FAILED:
            self.states[key] = StepState(StepStatus.FAILED)
        elif end.how is Ended.NOT_STARTED:  # refused before it started: pause or cancel asked
            self.states[key] = StepState(StepStatus.PENDING)
            self.stop = self.stop or await self.ledger.requested_action(self.lease)
        elif end.how is Ended.RUNNER_STOPPED:
            assert end.error is not None
            raise end.error
        else:
            run_logger().warning(
                "%s ended without an outcome (%s); the restaurant will be run again",
                self.plan.graph.spec(key).label,
                _describe(end.error),
            )
            self.states[key] = StepState(StepStatus.PENDING)
            self.interrupted.append(key)

    async def end(self) -> State[Any]:
        """End the job: cancelled, held for a pause, left for a re-run, or completed/failed."""
        name, job_id = self.plan.restaurant_name, self.plan.job_id
        unstarted = any(s.status == StepStatus.PENDING for s in self.states.values())
        if unstarted and self.stop == RequestedAction.CANCEL:
            await self.ledger.cancel_job(self.lease, job_id)
            return Cancelled(message=f"{name}: batch cancelled; unfinished steps cancelled")
        if unstarted and self.stop == RequestedAction.PAUSE:
            await self.ledger.hold_job(self.lease, job_id)
            done = sum(s.status == StepStatus.COMPLETED for s in self.states.values())
            message = (
                f"{name}: batch paused after {done} completed steps; resume continues from there"
            )
            log_pause(f"Restaurant paused with its batch, not failed. {message}")
            return Cancelled(name="Paused", message=message)
        if self.interrupted:
            labels = ", ".join(self.plan.graph.spec(k).label for k in self.interrupted)
            return Failed(message=f"{name}: {labels} ended without an outcome; dispatched again")
        if await self.ledger.finish_job(self.lease, job_id) == JobStatus.FAILED:
            states = self.states.items()
            graph = self.plan.graph
            failed = [graph.spec(k).label for k, s in states if s.status == StepStatus.FAILED]
            run_logger().error("%s failed at %s", name, ", ".join(failed))
            return Failed(message=f"{name}: {', '.join(failed)} failed")
        return Completed(message=f"{name}: registered")


def _decide(
    states: dict[str, StepState], config: RegistrationConfig, graph: StepGraph
) -> list[Run | Skip]:
    """Every decision available now, following skips (a skip can settle a dependency)."""
    decisions: list[Run | Skip] = []
    projected = dict(states)
    while batch := next_decisions(projected, config, graph):
        decisions += batch
        for decision in batch:
            projected[decision.key] = (
                StepState(StepStatus.SKIPPED, blocked_by=decision.blocked_by)
                if isinstance(decision, Skip)
                else StepState(StepStatus.IN_PROGRESS)
            )
    return decisions


async def _cancel_all(running: dict[asyncio.Task[StepEnd], str]) -> None:
    """Cancel the step tasks still running and wait until they have stopped."""
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    running.clear()


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {str(error)[:200]}" if error else "no error given"
