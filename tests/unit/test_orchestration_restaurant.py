"""One restaurant's decision loop (`JobRun`) with an in-memory ledger and scripted steps.

No Prefect, no database, no HTTP: the loop is given the fake ledger and a step runner that
records attempts and outcomes in it as a step task does, by a script per step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from regbatch.errors import (
    BatchStoppingError,
    LeaseLostError,
    PermanentPlatformError,
    StepCodeError,
)
from regbatch.flows.restaurant import JobRun
from regbatch.lease import Lease
from regbatch.ledger import Completed, Failed
from regbatch.statuses import JobStatus, RequestedAction, StepStatus
from regbatch.step_outcomes import Ended, StepEnd
from regbatch.steps import BUILT_IN, STEPS, StepGraph, StepKey, step
from tests.unit.conftest import make_config
from tests.unit.fake_ledger import FakeJob, FakeLedger

pytestmark = pytest.mark.anyio
K = StepKey

Script = dict[str, Callable[[], Coroutine[Any, Any, Any]]]
# What later steps' conditions read of earlier results (code generation made an injection).
RESULTS: dict[str, dict[str, Any]] = {
    K.CODE_GENERATION: {"head_injection": "<style></style>", "body_injection": ""},
}


class Steps:
    """Runs steps as a step task would: start the attempt, then the script (default: done)."""

    def __init__(self, ledger: FakeLedger, lease: Lease, job: FakeJob, script: Script) -> None:
        self.ledger, self.lease, self.job, self.script = ledger, lease, job, script
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, key: str) -> StepEnd:
        try:
            await self.ledger.start_attempt(self.lease, self.job.id, key)
        except BatchStoppingError as exc:
            return StepEnd(Ended.NOT_STARTED, error=exc)
        except LeaseLostError as exc:
            return StepEnd.from_error(exc)
        self.started.append(key)
        try:
            result = await self.script[key]() if key in self.script else RESULTS.get(key, {})
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        except (PermanentPlatformError, StepCodeError) as exc:
            await self.ledger.record_outcome(self.lease, self.job.id, key, Failed(exc))
            return StepEnd(Ended.FAILED, error=exc)
        except Exception as exc:  # what a task that ended without an outcome reports
            return StepEnd.from_error(exc)
        try:
            await self.ledger.record_outcome(self.lease, self.job.id, key, Completed(result))
        except LeaseLostError as exc:
            return StepEnd.from_error(exc)
        return StepEnd(Ended.COMPLETED, result=result)


async def _job_run(
    script: Script | None = None, graph: StepGraph = BUILT_IN
) -> tuple[FakeLedger, FakeJob, JobRun, Steps]:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 1, graph=graph)
    start = await ledger.begin_run(batch.id, "tests", "tests", None)
    assert start.lease is not None
    job = ledger.jobs_of(batch.id)[0]
    plan = await ledger.begin_job(start.lease, job.id)
    steps = Steps(ledger, start.lease, job, script or {})
    return ledger, job, JobRun(ledger, start.lease, plan, steps), steps


def _statuses(job: FakeJob) -> dict[str, StepStatus]:
    return {key: row.status for key, row in job.steps.items()}


async def test_every_step_runs_once_after_its_dependencies() -> None:
    _, job, run, steps = await _job_run()
    await run.drive()
    state = await run.end()
    assert state.is_completed(), state
    assert job.status == JobStatus.COMPLETED
    assert set(_statuses(job).values()) == {StepStatus.COMPLETED}
    assert sorted(steps.started) == sorted(s.key for s in STEPS)
    for spec in STEPS:
        for dependency in spec.prerequisites:
            assert steps.started.index(dependency) < steps.started.index(spec.key), spec.key


async def test_the_batch_request_is_read_only_before_steps_start() -> None:
    """One read of the batch's request per wave of steps started, none after a step's end that
    starts nothing (its siblings still run, or the job is done)."""
    ledger, _, run, steps = await _job_run()
    started_at_read: list[int] = []
    read = ledger.requested_action

    async def counted(lease: Lease) -> RequestedAction | None:
        started_at_read.append(len(steps.started))
        return await read(lease)

    ledger.requested_action = counted  # type: ignore[method-assign]
    await run.drive()
    assert (await run.end()).is_completed()
    assert len(steps.started) == len(STEPS)
    # every read was followed by a step's start before the next read, the last one included
    assert started_at_read == sorted(set(started_at_read)), started_at_read
    assert started_at_read[-1] < len(STEPS), started_at_read


async def test_a_failure_skips_what_depends_on_it_and_the_rest_still_runs() -> None:
    async def refused() -> Any:
        raise PermanentPlatformError("menu_import failed: the platform answered 400")

    _, job, run, _ = await _job_run({K.MENU_IMPORT: refused})
    await run.drive()
    assert (await run.end()).is_failed()
    statuses = _statuses(job)
    assert job.status == JobStatus.FAILED
    assert statuses[K.MENU_IMPORT] == StepStatus.FAILED
    for key in (K.OPTION_SETS, K.ITEM_TAGS):
        assert statuses[key] == StepStatus.SKIPPED
        assert job.steps[key].blocked_by == K.MENU_IMPORT
    for key in (K.WEBSITE_CONFIGURATION, K.PAYMENT_CONFIGURATION, K.ONBOARDING_SYNC):
        assert statuses[key] == StepStatus.COMPLETED, key


async def test_a_pause_lets_running_steps_finish_and_starts_nothing_new() -> None:
    ledger, job, run, steps = await _job_run()
    released = asyncio.Event()

    async def registration_while_paused() -> Any:
        ledger.ask(job.batch_id, RequestedAction.PAUSE)  # asked while this step is running
        await released.wait()
        return {"platform_restaurant_id": "r1", "subdomain": "s", "website_url": "u"}

    steps.script[K.RESTAURANT_REGISTRATION] = registration_while_paused
    driving = asyncio.create_task(run.drive())
    await asyncio.sleep(0.01)
    released.set()
    await driving
    state = await run.end()
    assert state.is_cancelled() and state.name == "Paused"
    statuses = _statuses(job)
    assert statuses[K.RESTAURANT_REGISTRATION] == StepStatus.COMPLETED  # it finished
    later = [s.key for s in STEPS if K.RESTAURANT_REGISTRATION in s.prerequisites]
    assert all(statuses[key] == StepStatus.PENDING for key in later)  # none started
    assert job.status == JobStatus.PENDING  # held, to resume from its finished steps
    assert not any(s in (StepStatus.IN_PROGRESS, StepStatus.RETRYING) for s in statuses.values())


async def test_a_cancel_cancels_every_unfinished_step_and_the_job() -> None:
    ledger, job, run, steps = await _job_run()

    async def account_then_cancel() -> Any:
        ledger.ask(job.batch_id, RequestedAction.CANCEL)
        return {"account_id": "a1", "user_id": "u1", "email": "e"}

    steps.script[K.ACCOUNT_REGISTRATION] = account_then_cancel
    await run.drive()
    state = await run.end()
    assert state.is_cancelled() and state.name == "Cancelled"
    assert job.status == JobStatus.CANCELLED
    assert job.steps[K.ACCOUNT_REGISTRATION].status == StepStatus.COMPLETED
    assert job.steps[K.RESTAURANT_REGISTRATION].status == StepStatus.CANCELLED


async def test_a_lost_lease_cancels_the_running_steps_at_once_and_writes_nothing() -> None:
    ledger, job, run, steps = await _job_run()
    never = asyncio.Event()

    async def slow_image_upload() -> Any:
        await never.wait()  # still running when the lease is lost
        return {}

    async def account_then_takeover() -> Any:
        await asyncio.sleep(0.01)  # the other first steps have started by now
        ledger.take_over(job.batch_id)
        return {"account_id": "a1", "user_id": "u1", "email": "e"}

    steps.script[K.IMAGE_UPLOAD] = slow_image_upload
    steps.script[K.ACCOUNT_REGISTRATION] = account_then_takeover
    with pytest.raises(LeaseLostError):
        await asyncio.wait_for(run.drive(), timeout=5)
    assert steps.cancelled == [K.IMAGE_UPLOAD]
    # the account's outcome was refused: the step stays for the new owner to ask again
    assert job.steps[K.ACCOUNT_REGISTRATION].status == StepStatus.IN_PROGRESS
    assert job.status == JobStatus.IN_PROGRESS


async def test_a_step_that_ended_without_an_outcome_leaves_the_job_for_a_rerun() -> None:
    async def orchestration_error() -> Any:
        raise RuntimeError("503 Service Unavailable from Prefect's API")

    _, job, run, _ = await _job_run({K.CODE_GENERATION: orchestration_error})
    await run.drive()
    state = await run.end()
    assert state.is_failed() and "dispatched again" in str(state.message)
    assert job.status == JobStatus.IN_PROGRESS  # not failed: it is not the restaurant's fault
    assert job.steps[K.CODE_GENERATION].status == StepStatus.IN_PROGRESS


async def test_resume_runs_only_what_a_previous_owner_left_unfinished() -> None:
    ledger = FakeLedger()
    # a job half done by a runner that died: 1 completed, 5 in flight, 3 retrying
    batch = ledger.add_batch(make_config(), 1)
    start = await ledger.begin_run(batch.id, "second", "tests", None)
    assert start.lease is not None
    half = ledger.jobs_of(batch.id)[0]
    half.status = JobStatus.IN_PROGRESS
    half.steps[K.ACCOUNT_REGISTRATION].status = StepStatus.COMPLETED
    half.steps[K.ACCOUNT_REGISTRATION].result = {"account_id": "a1", "user_id": "u", "email": "e"}
    half.steps[K.RESTAURANT_REGISTRATION].status = StepStatus.IN_PROGRESS
    half.steps[K.ONBOARDING_USER].status = StepStatus.RETRYING
    plan = await ledger.begin_job(start.lease, half.id)
    resumed = Steps(ledger, start.lease, half, {})
    again = JobRun(ledger, start.lease, plan, resumed)
    await again.drive()
    assert (await again.end()).is_completed()
    assert K.ACCOUNT_REGISTRATION not in resumed.started
    assert {K.RESTAURANT_REGISTRATION, K.ONBOARDING_USER} <= set(resumed.started)
    assert half.steps[K.RESTAURANT_REGISTRATION].attempts == 1


async def test_a_step_refused_before_it_started_stops_the_job_without_a_record() -> None:
    ledger, job, run, steps = await _job_run()
    ledger.ask(job.batch_id, RequestedAction.PAUSE)  # asked between the loop's check and start
    run.stop = None
    first = [s.key for s in STEPS if not s.prerequisites]
    ends = [await steps(key) for key in first]
    assert {end.how for end in ends} == {Ended.NOT_STARTED}
    assert all(job.steps[key].attempts == 0 for key in first)


def test_the_step_graph_the_loop_follows_has_no_cycle() -> None:
    seen: set[str] = set()
    for spec in STEPS:  # declared in an order where every prerequisite comes first
        assert set(spec.prerequisites) <= seen, step(spec.key).label
        seen.add(spec.key)


def _crm_graph() -> StepGraph:
    from types import ModuleType

    from regbatch.handlers import StepContext, extra_step
    from regbatch.plugins import HandlerRegistry

    @extra_step("crm_sync", after=("restaurant_registration",))
    async def crm_sync(ctx: StepContext) -> dict[str, Any]:
        return {}

    module = ModuleType("crm_plugin")
    crm_sync.__module__, crm_sync.__qualname__ = module.__name__, "crm_sync"
    module.crm_sync = crm_sync  # type: ignore[attr-defined]
    return HandlerRegistry.from_modules(module).graph


async def test_an_extra_step_runs_after_its_dependencies_and_counts_for_the_job() -> None:
    graph = _crm_graph()
    _, job, run, steps = await _job_run(graph=graph)
    assert job.handlers == {"crm_sync": "crm_plugin:crm_sync"}
    await run.drive()
    assert (await run.end()).is_completed()
    assert steps.started.index("crm_sync") > steps.started.index(K.RESTAURANT_REGISTRATION)
    assert sorted(steps.started) == sorted(s.key for s in graph.steps)

    async def refused() -> Any:
        raise PermanentPlatformError("the CRM refused the restaurant: 400")

    _, job, run, _ = await _job_run({"crm_sync": refused}, graph=graph)
    await run.drive()
    assert (await run.end()).is_failed()
    statuses = _statuses(job)
    assert statuses["crm_sync"] == StepStatus.FAILED
    assert {k for k, v in statuses.items() if v != StepStatus.COMPLETED} == {"crm_sync"}
