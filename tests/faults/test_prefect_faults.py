"""Prefect's server dies under a running batch (kill -9) and comes back.

The runner keeps its ledger in PostgreSQL, so the batch ends exactly as the uninterrupted run
did: restaurants whose subflow could not start are dispatched again, runs Prefect lost track of
are ended when the batch ends, and nothing is performed twice.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import (
    PREFECT_DATABASE,
    _drop_database,
    _ensure_database,
    _wait_healthy,
    free_port,
)
from tests.faults import harness
from tests.faults.harness import ROUNDS, wait_for
from tests.processes import stop_group

pytestmark = [pytest.mark.flow, pytest.mark.slow]

PREFECT = str(Path(sys.executable).with_name("prefect"))


class PrefectServer:
    """A `prefect server start` of the test's own, on PostgreSQL, that can be killed."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        url = make_url(PREFECT_DATABASE)
        name = f"{url.database}_faults_{secrets.token_hex(3)}"
        self.database = url.set(database=name).render_as_string(hide_password=False)
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        _ensure_database(self.database)
        self.starts += 1
        log = (self.logs / f"prefect-server-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env={
                **os.environ,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database,
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_healthy(self.api_url, self.process, timeout_s=90)

    def kill_9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process)
        _drop_database(self.database)


@pytest.fixture()
def own_prefect(logs: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(logs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
