"""`register_restaurant(job_id)`: one restaurant's twelve steps, as a Prefect (sub)flow.

The flow only orchestrates: it asks `regbatch.planning` what runs next, starts those step tasks
concurrently where the graph allows, records skips with their reasons, and ends the job from its
steps' outcome. Steps already completed are never run again (resume); a failed job re-runs only
its failed steps and the steps they blocked. Pause and cancel requests on the batch are honoured
at step boundaries: running steps finish, nothing new starts.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from regbatch.config import RegistrationConfig
from regbatch.planning import Run, Skip, StepState, next_decisions
from regbatch.statuses import JOB_FINISHED, JobStatus, RequestedAction, StepStatus
from regbatch.steps import StepKey, step
from services import execution
from tasks.steps import step_task


def _run_name() -> str:
    job_id = flow_run.parameters.get("job_id")
    try:
        return execution.restaurant_name_for_job(uuid.UUID(str(job_id)))
    except Exception:  # a name is never worth failing a run for
        return f"job {job_id}"


class Paused(Exception):
    """Raised inside the flow when the batch asked to pause; the job is held, not finished."""


@flow(
    name="register-restaurant",
    flow_run_name=_run_name,
    retries=0,
    persist_result=False,
    validate_parameters=True,
)
async def register_restaurant(job_id: uuid.UUID) -> State[Any]:
    """Register one restaurant: run its steps in dependency order, resuming from the ledger."""
    logger = get_run_logger()
    plan = await execution.begin_job(job_id)
    if plan.status in JOB_FINISHED:
        return Completed(message=f"job already {plan.status}; nothing to do")
    states = dict(plan.states)
    running: dict[asyncio.Task[Any], StepKey] = {}
    stop: str | None = None

    while True:
        if stop is None:
            stop = await execution.requested_action(plan.batch_id)
        if stop is None:
            decisions = _decide(states, plan.config)
            skips = [d for d in decisions if isinstance(d, Skip)]
            if skips:
                await execution.record_skipped(
                    job_id, [(d.key, d.reason, d.blocked_by) for d in skips]
                )
            for decision in decisions:
                if isinstance(decision, Skip):
                    states[decision.key] = StepState(
                        StepStatus.SKIPPED, blocked_by=decision.blocked_by
                    )
                else:
                    states[decision.key] = StepState(StepStatus.IN_PROGRESS)
                    task = step_task(decision.key, plan.config)
                    running[asyncio.create_task(task(job_id))] = decision.key
        if not running:
            break
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for finished in done:
            key = running.pop(finished)
            states[key] = await _settle(job_id, key, finished)

    unstarted = any(s.status == StepStatus.PENDING for s in states.values())
    if unstarted and stop == RequestedAction.CANCEL:
        await execution.cancel_job(job_id)
        return Cancelled(
            message=f"{plan.restaurant_name}: batch cancelled; unfinished steps cancelled"
        )
    if unstarted and stop == RequestedAction.PAUSE:
        await execution.hold_job(job_id)
        done_count = sum(s.status == StepStatus.COMPLETED for s in states.values())
        return Cancelled(
            name="Paused",
            message=f"{plan.restaurant_name}: batch paused after "
            f"{done_count} completed steps; resume continues from there",
        )
    outcome = await execution.finish_job(job_id)
    if outcome == JobStatus.FAILED:
        failed = [step(k).label for k, s in states.items() if s.status == StepStatus.FAILED]
        logger.error("%s failed at %s", plan.restaurant_name, ", ".join(failed))
        return Failed(message=f"{plan.restaurant_name}: {', '.join(failed)} failed")
    return Completed(message=f"{plan.restaurant_name}: registered")


def _decide(states: dict[StepKey, StepState], config: RegistrationConfig) -> list[Run | Skip]:
    """Every decision available now, following skips (a skip can settle a dependency)."""
    decisions: list[Run | Skip] = []
    projected = dict(states)
    while batch := next_decisions(projected, config):
        decisions += batch
        for decision in batch:
            projected[decision.key] = (
                StepState(StepStatus.SKIPPED, blocked_by=decision.blocked_by)
                if isinstance(decision, Skip)
                else StepState(StepStatus.IN_PROGRESS)
            )
    return decisions


async def _settle(job_id: uuid.UUID, key: StepKey, finished: asyncio.Task[Any]) -> StepState:
    """The step's final state once its task ended; a task that died unrecorded is failed."""
    error = finished.exception()
    if error is None:
        return StepState(StepStatus.COMPLETED, finished.result())
    # The step normally recorded its own failure; this covers a task killed from outside
    # (Prefect's timeout, a crash before the first write) so no row stays in progress.
    await execution.record_failed(job_id, key, error)
    return StepState(StepStatus.FAILED)
