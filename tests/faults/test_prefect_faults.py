"""Prefect's server dies under a running batch (kill -9) and comes back.

The runner keeps its ledger in PostgreSQL, so the batch ends exactly as the uninterrupted run
did: restaurants whose subflow could not start are dispatched again, runs Prefect lost track of
are ended when the batch ends, and nothing is performed twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PREFECT_DATABASE
from tests.faults import harness
from tests.faults.harness import ROUNDS, wait_for
from tests.prefect_servers import PrefectServer, database_beside, drop_database

pytestmark = [pytest.mark.flow, pytest.mark.slow]


@pytest.fixture()
def own_prefect(logs: Path) -> Iterator[PrefectServer]:
    """A Prefect server of the test's own, in a database of its own: the test kills it."""
    server = PrefectServer(database_beside(PREFECT_DATABASE, "faults"), logs)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        drop_database(server.database)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_9_of_the_prefect_server_and_a_restart(
    round_, scenario_org, sandbox, reference, logs, own_prefect: PrefectServer
) -> None:
    scenario = harness.new_scenario(scenario_org, sandbox, logs)
    env = {
        "PREFECT_API_URL": own_prefect.api_url,
        "PREFECT_UI_URL": own_prefect.api_url.removesuffix("/api"),
    }
    try:
        runner = scenario.run_batch(env=env)
        wait_for(lambda: harness.steps_done(scenario.batch_id) >= 10, 90, what="a running batch")
        own_prefect.kill_9()
        time.sleep(3.0)  # the runner meets a dead API for a while
        own_prefect.start()
        code = runner.wait(timeout=300)
        if harness.batch_status(scenario.batch_id) != "completed":
            # the runner gave up (its own flow run could not be tracked): the next one resumes
            wait_for(lambda: harness.lease_expired(scenario.batch_id), 30, what="lease expiry")
            recovery = scenario.recover(env=env)
            assert recovery.wait(timeout=300) in (0, 1), scenario.output(recovery)
    finally:
        scenario.stop_all()
    assert code in (0, 1), scenario.output(runner)
    harness.check_finished_like(scenario, reference, sandbox, prefect_api=own_prefect.api_url)
