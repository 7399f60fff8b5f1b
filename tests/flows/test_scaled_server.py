"""Prefect's scaled server (scripts/prefect-scaled-server): a batch of 3 restaurants through the
CLI against it, its events carried by Redis, and every process gone once it is stopped.

The script gets a port, a PostgreSQL database and a Redis database of its own; the database is
dropped and the Redis database emptied afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regbatch.sandbox.server import SandboxServer
from tests.cli import run
from tests.conftest import free_port
from tests.flows.conftest import new_batch

pytestmark = [pytest.mark.flow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "prefect-scaled-server"
PREFECT = Path(sys.executable).with_name("prefect")
CLAIM = "regbatch-test-claim"


def _redis(db: int = 0) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=6379, db=db, decode_responses=True)


@pytest.fixture()
def redis_db() -> Iterator[int]:
    """An empty Redis database of this test's own (claimed with a key), emptied afterwards."""
    pytest.importorskip("prefect_redis", reason="the `scaled` extra is not installed")
    try:
        _redis().ping()
    except Exception as error:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {error}")
    for db in range(1, 16):
        client = _redis(db)
        if client.set(CLAIM, str(os.getpid()), nx=True):
            if client.dbsize() == 1:
                yield db
                client.flushdb()
                return
            client.delete(CLAIM)
    pytest.skip("no empty Redis database")


def _admin_execute(statement: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(statement))
    admin.dispose()


@pytest.fixture()
def prefect_database() -> Iterator[str]:
    """A database name of its own (the script creates it); dropped afterwards."""
    name = f"regbatch_scaled_test_{os.getpid()}_{secrets.token_hex(3)}"
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _live_processes(groups: set[int]) -> list[str]:
    """'pid command' of every process (zombies aside) in one of the process groups."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            name, rest = stat.read_text().rsplit(")", 1)
            state, _, pgrp = rest.split()[:3]
            if int(pgrp) in groups and state != "Z":
                found.append(f"{stat.parent.name} {name.split('(', 1)[1]}")
    return found


def _flow_run_events(api_url: str) -> list[dict[str, Any]]:
    """The flow-run Completed events the server has persisted (read from Redis by the
    services' event persister: the API workers only publish them)."""
    body = json.dumps(
        {"filter": {"event": {"name": ["prefect.flow-run.Completed"]}}, "limit": 50}
    ).encode()
    request = urllib.request.Request(
        f"{api_url}/events/filter",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return list(json.load(answer)["events"])


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_batch_runs_on_the_scaled_server_and_its_events_go_through_redis(
    org_id: uuid.UUID, redis_db: int, prefect_database: str, tmp_path: Path
) -> None:
    port, logs = free_port(), tmp_path / "scaled"
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_SCALED_DATABASE_URL": prefect_database,
        "PREFECT_SCALED_REDIS_DB": str(redis_db),
        "PREFECT_SCALED_PREFECT": str(PREFECT),
    }
    output = (tmp_path / "script.log").open("wb")
    script = subprocess.Popen(
        [str(SCRIPT), "--port", str(port), "--workers", "2", "--dir", str(logs)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    groups: set[int] = set()
    try:
        check = subprocess.run(
            [str(SCRIPT), "--check", "--port", str(port), "--timeout", "60"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        groups = {int((logs / f"{name}.pid").read_text()) for name in ("api", "services")}
        _wait_for(
            lambda: f"export PREFECT_API_URL={api_url}" in (tmp_path / "script.log").read_text(),
            10,
            "the script's export line",
        )
        client = _redis(redis_db)
        before = client.xinfo_stream("events")["entries-added"] if client.exists("events") else 0

        key = os.environ["REGBATCH_PLATFORM_SERVICE_KEY"]
        with SandboxServer(key, account_spacing_s=0, image_processing_s=0.05) as sandbox:
            batch_id, _, _ = new_batch(org_id, 3, execution_mode="parallel", concurrency=3)
            result = run(
                "batch",
                "run",
                str(batch_id),
                "--json",
                env={"PREFECT_API_URL": api_url, "REGBATCH_PLATFORM_URL": sandbox.url},
            )
        detail = json.loads(result.stdout)
        assert (detail["status"], detail["completed"], detail["failed"]) == ("completed", 3, 0)

        # Prefect's events went through Redis: its events stream and the services' consumer
        # groups on it are in this test's database, and the persister read the flow runs'
        # Completed events (the batch's and its 3 restaurants') from it into PostgreSQL.
        assert client.xinfo_stream("events")["entries-added"] > before
        consumers = {group["name"] for group in client.xinfo_groups("events")}
        assert {"event-persister", "reactive-triggers"} <= consumers, consumers
        completed = _wait_for(
            lambda: len(_flow_run_events(api_url)) >= 4 and _flow_run_events(api_url),
            30,
            "4 persisted flow-run Completed events",
        )
        names = {event["resource"]["prefect.resource.name"] for event in completed}
        assert any(name.startswith("batch: ") for name in names), names
    finally:
        if script.poll() is None:
            script.send_signal(signal.SIGTERM)
        try:
            returncode = script.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            raise
        output.close()
        left = _live_processes(groups | {script.pid})
        if left:
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
    log = (tmp_path / "script.log").read_text()
    assert returncode == 0, log
    assert log.rstrip().endswith("stopped"), log
    assert len(groups) == 2 and not left, left
    assert not (logs / "api.pid").exists() and not (logs / "services.pid").exists()
