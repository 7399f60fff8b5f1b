"""`regbatch serve` stops within seconds on SIGTERM and Ctrl+C (SIGINT), and says so: with its
Prefect server up, and after that server was stopped first (with a run in flight too)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from regbatch.services.batches import get_batch
from tests.cli import REGBATCH
from tests.conftest import PREFECT_DATABASE
from tests.flows.conftest import new_batch
from tests.flows.test_batch import wait_for
from tests.prefect_servers import PrefectServer, database_beside, drop_database

pytestmark = [pytest.mark.flow, pytest.mark.slow]
STOP_BOUND_S = 20  # generous: it takes 1-3 s, at most 8 s (the grace of runs in flight) and 2


@contextlib.contextmanager
def _serve(api_url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`regbatch serve` against the Prefect server at `api_url`, once it serves; killed after."""
    process = subprocess.Popen(
        [REGBATCH, "serve"],
        stdout=open(log, "w"),  # noqa: SIM115 - the child holds it
        stderr=subprocess.STDOUT,
        env={**os.environ, "PREFECT_API_URL": api_url},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "You can also trigger your deployments" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start:\n" + log.read_text()
            time.sleep(0.5)
        time.sleep(2)  # into the runner's loop, its signal handlers in place
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _stop(process: subprocess.Popen[bytes], sig: int, log: Path, returncode: int = 0) -> float:
    """Send `sig` to serve's process group (as Ctrl+C does); the seconds it took to exit."""
    started = time.monotonic()
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"regbatch serve still ran {STOP_BOUND_S} s after {sig!r}:\n{log.read_text()}")
    assert process.returncode == returncode, log.read_text()
    return time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_promptly_on_a_signal(pg_url, prefect_server, tmp_path, sig) -> None:
    log = tmp_path / "serve.log"
    with _serve(prefect_server, log) as process:
        _stop(process, sig, log)
    assert "regbatch serve stopped" in log.read_text()
    assert "deployments paused until the next `regbatch serve`" in log.read_text()


@pytest.fixture()
def own_prefect_server(tmp_path: Path) -> Iterator[PrefectServer]:
    """A Prefect server on PostgreSQL, in a database of its own, that the test stops."""
    server = PrefectServer(database_beside(PREFECT_DATABASE, "stop"), tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        drop_database(server.database)


def test_serve_stops_promptly_after_its_prefect_server_is_gone(
    pg_url, own_prefect_server, tmp_path
) -> None:
    api_url = own_prefect_server.api_url
    log = tmp_path / "serve.log"
    with _serve(api_url, log) as process:
        own_prefect_server.terminate()
        time.sleep(3)  # serve's polls now fail and retry
        _stop(process, signal.SIGTERM, log)
    assert "regbatch serve stopped" in log.read_text()
    assert "the Prefect server is unreachable" in log.read_text()


def test_serve_stops_with_a_run_in_flight_after_its_prefect_server_is_gone(
    org_id, sandbox, own_prefect_server, tmp_path
) -> None:
    """The run's process would deliver its queued events to the gone server for minutes: serve
    kills it once its grace is over, and says so."""
    api_url = own_prefect_server.api_url
    batch_id, _, _ = new_batch(org_id, 3, execution_mode="parallel", concurrency=3)
    sandbox.set_latency(default_ms=5000)  # the batch is still running when the signal comes
    log = tmp_path / "serve.log"
    env = {**os.environ, "PREFECT_API_URL": api_url}
    try:
        with _serve(api_url, log) as process:
            subprocess.run([REGBATCH, "batch", "start", str(batch_id)], env=env, check=True)
            wait_for(lambda: get_batch(batch_id).status == "in_progress", timeout=60, interval=0.5)
            own_prefect_server.terminate()
            time.sleep(2)
            _stop(process, signal.SIGTERM, log, returncode=1)
    finally:
        sandbox.set_latency(default_ms=0)
        subprocess.run([REGBATCH, "batch", "cancel", str(batch_id)], env=env, check=False)
    assert "killed its 1 run(s)" in log.read_text()
