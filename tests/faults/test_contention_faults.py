"""Contention: the account limit queueing longer than step timeouts, concurrent retry-failed."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep
from regbatch.services.batches import get_batch
from tests.faults import harness
from tests.faults.harness import ROUNDS

pytestmark = [pytest.mark.flow, pytest.mark.slow]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_account_limit_queues_longer_than_step_timeouts(
    round_, scenario_org, sandbox, reference, logs
) -> None:
    spacing = 0.5
    sandbox.set_account_spacing(spacing)
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    sandbox.set_account_spacing(spacing)  # both sides: the platform refuses faster creations
    # every step may take 0.6 s (120 s x 0.005); six restaurants queue for 0.5 s turns, so
    # the last in line waits about 3 s for its turn: five times its step's timeout
    env = {
        "REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": str(spacing),
        "REGBATCH_STEP_TIMEOUT_SCALE": "0.005",
    }
    try:
        runner = scenario.run_batch(env=env)
        assert runner.wait(timeout=300) == 0, scenario.output(runner)
        exited = datetime.now(UTC)
    finally:
        scenario.stop_all()
    harness.check_finished_like(scenario, reference, sandbox)
    mine = {str(r) for r in scenario.restaurant_ids}
    accounts = sorted(
        datetime.fromisoformat(r["received_at"])
        for r in sandbox.requests()
        if r["step"] == "account_registration" and r["restaurant"] in mine
    )
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(accounts)]
    # every creation reached the platform a spacing after the previous one: none was refused
    assert min(gaps) >= spacing, gaps
    with session_scope() as session:
        attempts = session.scalars(
            select(JobStep.attempts)
            .join(Job, Job.id == JobStep.job_id)
            .where(Job.batch_id == scenario.batch_id, JobStep.step_key == "account_registration")
        ).all()
    # waiting in the queue was never an attempt; one attempt each (one permanent failure)
    assert set(attempts) == {1}, attempts
    # the process ended promptly once the batch had: nothing left waiting for a slot
    completed_at = get_batch(scenario.batch_id).completed_at
    assert completed_at is not None
    output = scenario.output(scenario.processes[0])
    assert "Still processing items" not in output, output[-2000:]
    assert (exited - completed_at).total_seconds() < 10, (exited, completed_at)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_ten_concurrent_retry_failed_make_one_retry_batch(
    round_, scenario_org, sandbox, logs
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    try:
        runner = scenario.run_batch()
        assert runner.wait(timeout=300) == 0, scenario.output(runner)
        assert get_batch(scenario.batch_id).failed == 3  # the plan's permanent failures
        callers = [
            scenario.spawn("batch", "retry-failed", str(scenario.batch_id), "--no-run", "--json")
            for _ in range(10)
        ]
        codes = [caller.wait(timeout=120) for caller in callers]
        (retry_id,) = {json.loads(_last_json(scenario.output(c)))["new_batch_id"] for c in callers}
        sandbox.clear_faults()  # the platform is fixed: the retry batch completes them all
        retry = scenario.spawn("batch", "run", retry_id)
        assert retry.wait(timeout=300) == 0, scenario.output(retry)
    finally:
        scenario.stop_all()
    outputs = [scenario.output(caller) for caller in callers]
    assert codes == [0] * 10, outputs
    answered = {json.loads(_last_json(text))["new_batch_id"] for text in outputs}
    with session_scope() as session:
        retries = session.scalar(
            select(func.count())
            .select_from(Batch)
            .where(Batch.retry_of_batch_id == scenario.batch_id)
        )
    assert retries == 1 and len(answered) == 1, (retries, answered)
    retried = get_batch(retry_id)
    assert (retried.status, retried.completed, retried.total) == ("completed", 3, 3)
    harness.check_no_duplicate_side_effects(scenario, sandbox)


def _last_json(text: str) -> str:
    """The JSON document a `--json` command printed (its last line that opens one)."""
    start = text.rindex("\n{") + 1 if "\n{" in text else text.index("{")
    return text[start:]
