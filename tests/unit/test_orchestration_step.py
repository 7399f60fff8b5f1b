"""One attempt of a step (`execute_step`) against the sandbox platform in-process, recording to
the in-memory ledger: what is recorded, what reaches the platform, and that Prefect's retry
condition follows the same rule as the ledger. No Prefect server, no database."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.states import Completed as CompletedState
from prefect.states import Failed as FailedState
from prefect.states import State

from regbatch.errors import (
    BatchStoppingError,
    LeaseLostError,
    LedgerUnavailableError,
    PermanentPlatformError,
    TransientPlatformError,
)
from regbatch.lease import Lease
from regbatch.platform import PlatformClient
from regbatch.runner.ledger import use_ledger
from regbatch.runner.platform import use_platform_client
from regbatch.statuses import RequestedAction, StepStatus
from regbatch.steps import StepKey
from regbatch.tasks.steps import _retry_transient, execute_step
from tests.unit.conftest import Control, make_config
from tests.unit.fake_ledger import FakeJob, FakeLedger

pytestmark = pytest.mark.anyio
STEP = StepKey.CODE_GENERATION  # no dependencies, no secrets: its request needs only the config


async def _ready() -> tuple[FakeLedger, Lease, FakeJob]:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 1)
    start = await ledger.begin_run(batch.id, "tests", "tests", None)
    assert start.lease is not None
    job = ledger.jobs_of(batch.id)[0]
    await ledger.begin_job(start.lease, job.id)
    return ledger, start.lease, job


async def _attempt(
    ledger: FakeLedger, lease: Lease, job: FakeJob, platform: PlatformClient, n: int, most: int
) -> dict[str, Any]:
    with use_ledger(ledger), use_platform_client(platform):
        return await execute_step(lease, job.id, STEP, timeout_s=5, attempt=(n, most))


async def _fault(control: Control, kind: str, times: int | None = None) -> None:
    restaurant = str(uuid.UUID(int=1))  # the fake ledger's id of the job's restaurant
    rule = {"restaurant": restaurant, "step": str(STEP), "kind": kind, "times": times}
    await control("POST", "/_sandbox/faults", {"rules": [rule]})


async def test_a_successful_attempt_is_recorded_with_its_result(platform, control) -> None:
    ledger, lease, job = await _ready()
    result = await _attempt(ledger, lease, job, platform, 1, 4)
    row = job.steps[STEP]
    assert (row.status, row.attempts, row.result) == (StepStatus.COMPLETED, 1, result)
    assert result["head_injection"]
    performed = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [(e["step"], e["replay"]) for e in performed] == [(str(STEP), False)]


async def test_a_transient_answer_is_retrying_then_the_next_attempt_completes(
    platform, control
) -> None:
    ledger, lease, job = await _ready()
    await _fault(control, "transient", times=1)
    with pytest.raises(TransientPlatformError):
        await _attempt(ledger, lease, job, platform, 1, 4)
    assert job.steps[STEP].status == StepStatus.RETRYING
    await _attempt(ledger, lease, job, platform, 2, 4)
    assert (job.steps[STEP].status, job.steps[STEP].attempts) == (StepStatus.COMPLETED, 2)


async def test_a_transient_answer_on_the_last_attempt_fails_the_step(platform, control) -> None:
    ledger, lease, job = await _ready()
    await _fault(control, "transient")
    with pytest.raises(TransientPlatformError):
        await _attempt(ledger, lease, job, platform, 4, 4)
    assert job.steps[STEP].status == StepStatus.FAILED


async def test_a_permanent_answer_fails_at_once_with_attempts_left(platform, control) -> None:
    ledger, lease, job = await _ready()
    await _fault(control, "permanent")
    with pytest.raises(PermanentPlatformError):
        await _attempt(ledger, lease, job, platform, 1, 4)
    assert (job.steps[STEP].status, job.steps[STEP].attempts) == (StepStatus.FAILED, 1)


@pytest.mark.parametrize("stop", ["pause", "cancel", "takeover"])
async def test_no_attempt_starts_after_a_stop_nor_reaches_the_platform(
    platform, control, stop: str
) -> None:
    ledger, lease, job = await _ready()
    if stop == "takeover":
        ledger.take_over(job.batch_id)
    else:
        ledger.ask(job.batch_id, RequestedAction(stop))
    expected = LeaseLostError if stop == "takeover" else BatchStoppingError
    with pytest.raises(expected):
        await _attempt(ledger, lease, job, platform, 1, 4)
    assert (job.steps[STEP].status, job.steps[STEP].attempts) == (StepStatus.PENDING, 0)
    assert (await control("GET", "/_sandbox/requests"))["entries"] == []


async def test_a_ledger_that_cannot_write_after_the_call_leaves_the_step_unfinished(
    platform,
) -> None:
    ledger, lease, job = await _ready()
    original = ledger.record_outcome

    async def unavailable(*args: Any) -> None:
        ledger.fail_writes()
        await original(*args)

    ledger.record_outcome = unavailable  # type: ignore[method-assign, assignment]
    with pytest.raises(LedgerUnavailableError):
        await _attempt(ledger, lease, job, platform, 1, 4)
    # not a platform failure: in progress, for the next owner to ask again (same key)
    assert job.steps[STEP].status == StepStatus.IN_PROGRESS


@pytest.mark.parametrize(
    ("error", "run_count", "retries", "retried"),
    [
        (TransientPlatformError("503"), 1, 3, True),
        (TransientPlatformError("503"), 4, 3, False),  # retries spent: recorded failed
        (PermanentPlatformError("400"), 1, 3, False),
        (LeaseLostError("taken over"), 1, 3, False),
        (BatchStoppingError("paused"), 1, 3, False),
        (TimeoutError("a timeout of our own"), 1, 3, False),
    ],
)
def test_prefects_retry_condition_follows_the_ledgers_rule(
    error: BaseException, run_count: int, retries: int, retried: bool
) -> None:
    task = SimpleNamespace(retries=retries)
    task_run = SimpleNamespace(run_count=run_count)
    state: State[Any] = FailedState(data=error)
    assert _retry_transient(task, task_run, state) is retried  # type: ignore[arg-type]
    assert _retry_transient(task, task_run, CompletedState(data={})) is False  # type: ignore[arg-type]
