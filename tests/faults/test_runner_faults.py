"""Faults of the runner itself: killed, frozen past its lease, cut off from its database.

Each ends exactly as the uninterrupted reference run (tests/faults/harness.py says what is checked).
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_BASE_URL
from tests.faults import harness
from tests.faults.harness import ROUNDS, kill, wait_for

pytestmark = [pytest.mark.flow, pytest.mark.slow]


def _recover_until_done(scenario: harness.Scenario) -> None:
    """Run `regbatch recover` once the lease has expired, until the batch has ended."""
    wait_for(lambda: harness.lease_expired(scenario.batch_id), 30, what="the lease to expire")
    recovery = scenario.recover()
    assert recovery.wait(timeout=300) in (0, 1), scenario.output(recovery)
    assert harness.batch_status(scenario.batch_id) == "completed", scenario.output(recovery)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_9_of_the_runner_at_a_random_moment(
    round_, scenario_org, sandbox, reference, logs
) -> None:
    rng = random.Random()
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    try:
        runner = scenario.run_batch()
        # the moment counts from the runner's takeover, not its start: on a slow machine its
        # import alone can outlast a start-relative moment, and a runner killed before it took
        # the batch has left nothing to recover
        wait_for(
            lambda: harness.batch_status(scenario.batch_id) != "draft" or runner.poll() is not None,
            120,
            interval=0.05,
            what="the runner to take the batch",
        )
        moment = rng.uniform(0.0, 5.0)  # right after the takeover, or mid-batch
        time.sleep(moment)
        kill(runner, signal.SIGKILL)
        runner.wait()
        _recover_until_done(scenario)
    finally:
        scenario.stop_all()
    harness.check_finished_like(scenario, reference, sandbox)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_runner_frozen_past_its_lease_is_fenced_when_it_wakes(
    round_, scenario_org, sandbox, reference, logs
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    try:
        frozen = scenario.run_batch()
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 10, 60, what="a running batch")
        kill(frozen, signal.SIGSTOP)
        wait_for(lambda: harness.lease_expired(scenario.batch_id), 30, what="the lease to expire")
        recovery = scenario.recover()
        before = harness.steps_done(scenario.batch_id)
        # the new owner is at work when the old one wakes up, its steps still in flight
        wait_for(
            lambda: harness.steps_done(scenario.batch_id) > before + 5,
            60,
            interval=0.05,
            what="the new owner to make progress",
        )
        kill(frozen, signal.SIGCONT)
        code = frozen.wait(timeout=60)
        assert recovery.wait(timeout=300) in (0, 1), scenario.output(recovery)
    finally:
        scenario.stop_all()
    output = scenario.output(frozen)
    assert code != 0, output
    assert "lost its lease" in output or "no longer this runner's" in output, output
    harness.check_finished_like(scenario, reference, sandbox)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_forty_rounds_of_dropped_database_connections(
    round_, scenario_org, sandbox, reference, logs
) -> None:
    tag = f"regbatch-faults-{scenario_org.hex[:8]}"
    separator = "&" if "?" in harness.os.environ["REGBATCH_DATABASE_URL"] else "?"
    url = f"{harness.os.environ['REGBATCH_DATABASE_URL']}{separator}application_name={tag}"
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    admin = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    dropped = 0
    try:
        runner = scenario.run_batch(env={"REGBATCH_DATABASE_URL": url})
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 1, 60, what="a running batch")
        with admin.connect() as connection:
            for _ in range(40):
                dropped += len(
                    connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :tag"
                        ),
                        {"tag": tag},
                    ).all()
                )
                time.sleep(0.25)
        code = runner.wait(timeout=300)
        if code != 0 or harness.batch_status(scenario.batch_id) != "completed":
            _recover_until_done(scenario)  # a runner may give up; the next one resumes
    finally:
        admin.dispose()
        scenario.stop_all()
    assert dropped >= 40, dropped  # the storm hit the runner's connections
    harness.check_finished_like(scenario, reference, sandbox)
