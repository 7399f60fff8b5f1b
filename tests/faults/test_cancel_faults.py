"""Cancel means cancelled, from anywhere; recovery never resumes what an operator stopped."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Cancelling

from regbatch.db.engine import session_scope
from regbatch.db.oplog import read_log
from regbatch.services.batches import get_batch
from tests.cli import run as cli_run
from tests.faults import harness
from tests.faults.harness import ROUNDS, kill, wait_for

pytestmark = [pytest.mark.flow, pytest.mark.slow]


async def _cancel_in_prefect(flow_run_id: uuid.UUID) -> None:
    async with get_client() as client:
        await client.set_flow_run_state(flow_run_id, Cancelling(message="cancelled by a test"))


def _flow_run_of(batch_id: uuid.UUID) -> uuid.UUID | None:
    return get_batch(batch_id).flow_run_id


def _check_cancelled(scenario: harness.Scenario, sandbox, since: datetime, actor: str) -> None:
    """Cancelled for good: every unfinished job cancelled, nothing started on the platform since
    the cancel took effect, the log naming who cancelled, and recovery leaves it alone."""
    detail = get_batch(scenario.batch_id)
    assert detail.status == "cancelled", detail.status
    statuses = {job.status for job in detail.jobs}
    assert statuses <= {"completed", "failed", "cancelled"}, statuses
    assert "cancelled" in statuses, "the cancel came too late to test anything"
    assert detail.cancelled_at is not None
    late = harness.platform_calls_after(scenario, sandbox, detail.cancelled_at)
    assert late == [], f"platform calls after the batch was cancelled: {late}"
    with session_scope() as session:
        entries = [(e.operation, e.actor) for e in read_log(session, scenario.batch_id)]
    assert ("batch_cancelled", actor) in entries, entries
    harness.check_common(scenario, sandbox)
    before = len(harness.platform_calls_after(scenario, sandbox, since))
    recovery = scenario.recover()
    assert recovery.wait(timeout=120) == 0, scenario.output(recovery)
    assert harness.batch_status(scenario.batch_id) == "cancelled"
    assert len(harness.platform_calls_after(scenario, sandbox, since)) == before


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_cancel_through_the_prefect_api_under_serve(
    round_, scenario_org, sandbox, logs, capsys
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    try:
        scenario.serve()
        started = cli_run(
            "batch", "start", str(scenario.batch_id), "--json", env=harness.RUNNER_ENV
        )
        flow_run_id = uuid.UUID(json.loads(started.stdout)["flow_run_id"])
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 15, 90, what="a running batch")
        asyncio.run(_cancel_in_prefect(flow_run_id))
        returned = datetime.now(UTC)
        wait_for(
            lambda: harness.batch_status(scenario.batch_id) == "cancelled",
            60,
            what="the batch to be cancelled",
        )
        cancelled = datetime.now(UTC)
        # serve goes on running (it would in production) while Prefect ends the runs
        harness.check_no_flow_run_left_unfinished(scenario.name)
    finally:
        scenario.stop_all()
    calls = harness.platform_calls_after(scenario, sandbox, returned)
    last = max((datetime.fromisoformat(c["received_at"]) for c in calls), default=returned)
    with capsys.disabled():
        print(
            f"\n  cancel under serve: the batch was cancelled {(cancelled - returned).total_seconds():.1f} s "
            f"after the Prefect API call returned; {len(calls)} step requests reached the "
            f"platform after the call, the last {(last - returned).total_seconds():.2f} s after it"
        )
    assert (last - returned).total_seconds() < 5.0, calls  # Prefect kills the run's process
    _check_cancelled(scenario, sandbox, returned, harness_actor(flow_run_id))


def harness_actor(flow_run_id: uuid.UUID) -> str:
    from regbatch.runner.prefect_runs import prefect_actor

    return prefect_actor(flow_run_id)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_cancel_through_the_prefect_api_of_a_run_in_a_terminal(
    round_, scenario_org, sandbox, logs
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    try:
        runner = scenario.run_batch()
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 15, 90, what="a running batch")
        flow_run_id = _flow_run_of(scenario.batch_id)
        assert flow_run_id is not None
        asyncio.run(_cancel_in_prefect(flow_run_id))
        returned = datetime.now(UTC)
        assert runner.wait(timeout=60) == 1, scenario.output(runner)
    finally:
        scenario.stop_all()
    _check_cancelled(scenario, sandbox, returned, harness_actor(flow_run_id))


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_no_step_starts_after_a_cancel_has_returned(
    round_, scenario_org, sandbox, logs, capsys
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    try:
        runner = scenario.run_batch()
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 15, 90, what="a running batch")
        cli_run("batch", "cancel", str(scenario.batch_id))
        returned = datetime.now(UTC)
        assert runner.wait(timeout=60) == 1, scenario.output(runner)
    finally:
        scenario.stop_all()
    with session_scope() as session:
        requested = next(
            e.created_at
            for e in read_log(session, scenario.batch_id)
            if e.operation == "batch_cancel_requested"
        )
    # steps in flight when the cancel was recorded may finish; none starts after it
    detail = get_batch(scenario.batch_id)
    late_starts = [
        (job.position, step.step_key)
        for job in detail.jobs
        for step in job.steps
        if step.started_at is not None and step.started_at > requested
    ]
    assert late_starts == [], late_starts
    asked_before = {
        (r["restaurant"], r["step"])
        for r in sandbox.requests()
        if datetime.fromisoformat(r["received_at"]) <= requested
    }
    new_calls = [
        r
        for r in harness.platform_calls_after(scenario, sandbox, requested)
        if (r["restaurant"], r["step"]) not in asked_before
    ]
    assert new_calls == [], new_calls
    # steps already running when the cancel was recorded finish (each within its own timeout)
    last_answer = max(
        (datetime.fromisoformat(r["answered_at"]) for r in sandbox.requests() if r["answered_at"]),
        default=returned,
    )
    with capsys.disabled():
        print(
            f"\n  cancel in a terminal: steps in flight went on for "
            f"{max((last_answer - returned).total_seconds(), 0):.2f} s after the cancel returned"
        )
    _check_cancelled(scenario, sandbox, returned, "user:cli")


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_recovery_never_resumes_what_an_operator_stopped(
    action, scenario_org, sandbox, logs
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    sandbox.set_latency(default_ms=400)  # slow steps: the runner is killed before it can stop
    try:
        runner = scenario.run_batch()
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 5, 90, what="a running batch")
        cli_run("batch", action, str(scenario.batch_id))
        kill(runner, signal.SIGKILL)  # the runner dies before it honours the request
        runner.wait()
        assert harness.batch_status(scenario.batch_id) == "in_progress"
        wait_for(lambda: harness.lease_expired(scenario.batch_id), 30, what="the lease to expire")
        stopped_at = datetime.now(UTC)
        recovery = scenario.recover()
        assert recovery.wait(timeout=120) in (0, 1), scenario.output(recovery)
    finally:
        scenario.stop_all()
    expected = "paused" if action == "pause" else "cancelled"
    assert harness.batch_status(scenario.batch_id) == expected
    assert harness.platform_calls_after(scenario, sandbox, stopped_at) == []
    harness.check_common(scenario, sandbox)
