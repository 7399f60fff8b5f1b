"""Plugins for real: the example plugin regbatch-trucks (examples/plugins) is built and installed
into a directory of this session, found through its entry point (importlib.metadata over that
directory, or PYTHONPATH for a runner process), and runs batches against PostgreSQL, the sandbox
over HTTP, Prefect and a real HTTP receiver standing in for the sales CRM.

The test environment itself has no plugin installed: each test says which registry it runs
with (`use_registry`), so nothing leaks into the other tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
)

from regbatch.api.running import run_batch
from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch
from regbatch.db.restaurants import import_restaurants
from regbatch.errors import ConfigurationError
from regbatch.plugins import HandlerRegistry, use_registry
from regbatch.services.batches import get_batch
from regbatch.services.exporting import export_batch
from regbatch.services.lifecycle import resume_batch, retry_failed
from regbatch.tasks.artifacts import artifact_key
from regbatch.views import BatchDetail, StepView
from tests.cli import REGBATCH, cli, cli_json, recovered_status, run
from tests.factories import restaurant_row
from tests.flows.conftest import ALL_STEPS_ON, lease_of, ledger_for
from tests.flows.prefect_records import finished_task_runs, restaurant_flow_runs
from tests.flows.test_batch import side_effects, wait_for
from tests.flows.test_distributed import deploy
from tests.flows.test_recovery import lease_expired
from tests.processes import WORKER_GRACE_S, stop_group
from tests.settings_env import settings_env

pytestmark = pytest.mark.flow

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCE = ROOT / "examples" / "plugins" / "regbatch-trucks"
TRUCK_MENU = "regbatch_trucks:import_truck_menu"
CRM_SYNC = "regbatch_trucks:crm_sync"
TRUCK, RESTAURANT = 7, 0  # sample rows: a food truck and a restaurant, both with menus


@pytest.fixture(scope="session")
def trucks_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """regbatch-trucks built from its pyproject and installed (pip) into a directory of its own."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN_SOURCE, work / "source")  # the build writes next to it
    target = work / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return str(target)


@pytest.fixture(scope="session")
def trucks(trucks_path: str) -> HandlerRegistry:
    """The plugins found through entry points in the installed directory: regbatch-trucks."""
    registry = HandlerRegistry.from_entry_points(path=[trucks_path])
    assert [(p.name, p.module) for p in registry.plugins] == [("trucks", "regbatch_trucks")]
    return registry


class Crm:
    """A real HTTP receiver standing in for the sales CRM: scripted answers per restaurant."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (restaurant id, Idempotency-Key)
        self.script: dict[str, list[int]] = {}  # restaurant id -> statuses to answer first
        self.lock = threading.Lock()
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                with crm.lock:
                    crm.requests.append((body["restaurant_id"], key))
                    queued = crm.script.get(body["restaurant_id"], [])
                    status = queued.pop(0) if queued else 200
                answer = {"crm_id": f"crm-{key}"} if status == 200 else {"error": "scripted"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sync"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls(self, restaurant_id: uuid.UUID) -> list[str]:
        with self.lock:
            return [key for rid, key in self.requests if rid == str(restaurant_id)]


@pytest.fixture()
def crm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Crm]:
    receiver = Crm()
    monkeypatch.setenv("REGBATCH_TRUCKS_CRM_URL", receiver.url)
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def make_batch(
    org_id: uuid.UUID, rows: list[int], **options: Any
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A draft batch of fresh restaurants from these sample rows, with the current registry."""
    with session_scope() as session:
        records = [restaurant_row(i) for i in rows]
        ids = [r.id for r in import_restaurants(session, org_id, records)]
        batch = batches.create_batch(
            session,
            organisation_id=org_id,
            name="plugin test",
            restaurant_ids=ids,
            settings=ALL_STEPS_ON,
            **options,
        )
        return batch.id, ids


def steps_of(detail: BatchDetail, restaurant_id: uuid.UUID) -> dict[str, StepView]:
    job = next(j for j in detail.jobs if j.restaurant_id == restaurant_id)
    return {s.step_key: s for s in job.steps}


def job_id_of(detail: BatchDetail, restaurant_id: uuid.UUID) -> uuid.UUID:
    return next(j.id for j in detail.jobs if j.restaurant_id == restaurant_id)


def test_a_food_truck_runs_the_plugin_handler_and_both_sync_to_the_crm(
    org_id, sandbox, trucks, crm
) -> None:
    with use_registry(trucks):
        batch_id, (truck, restaurant) = make_batch(org_id, [TRUCK, RESTAURANT])
        crm.script[str(truck)] = [503, 503]  # transient twice: the third attempt succeeds
        detail = run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("completed", 2, 0)

    truck_steps, restaurant_steps = steps_of(detail, truck), steps_of(detail, restaurant)
    assert truck_steps["menu_import"].handler == TRUCK_MENU
    assert truck_steps["menu_import"].result_data is not None
    assert truck_steps["menu_import"].result_data["menu_handler"] == "regbatch-trucks"
    assert truck_steps["menu_import"].result_data["service_days"] == ["fri", "sat", "thu"]
    assert restaurant_steps["menu_import"].handler is None
    assert "menu_handler" not in (restaurant_steps["menu_import"].result_data or {})
    # the truck's handler wrapped the built-in import: the platform imported each menu once
    effects = side_effects(sandbox, [truck, restaurant])
    assert effects[(str(truck), "menu_import")] == effects[(str(restaurant), "menu_import")] == 1

    for rid, attempts in ((truck, 3), (restaurant, 1)):
        sync = steps_of(detail, rid)["crm_sync"]
        key = f"{job_id_of(detail, rid)}:crm_sync"
        assert (sync.step_number, sync.status, sync.attempts) == (13, "completed", attempts)
        assert sync.handler == CRM_SYNC and sync.result_data == {"crm_id": f"crm-{key}"}
        assert crm.calls(rid) == [key] * attempts  # one idempotency key for every attempt

    shown = cli("batch", "show", str(batch_id)).stdout
    assert f"09-menu_import by {TRUCK_MENU}, 13-crm_sync by {CRM_SYNC}" in shown
    as_json = cli_json("batch", "show", str(batch_id))
    assert {s["step_key"]: s["handler"] for s in as_json["jobs"][1]["steps"]}[
        "crm_sync"
    ] == CRM_SYNC
    exported = json.loads(export_batch(batch_id, None, "json")[1])
    plugin_results = {row["restaurant_id"]: row["plugin_results"] for row in exported["rows"]}
    assert set(plugin_results[str(truck)]) == {"menu_import", "crm_sync"}
    assert set(plugin_results[str(restaurant)]) == {"crm_sync"}
    assert detail.flow_run_id is not None
    restaurant_runs = [r.id for r in run_coroutine(restaurant_flow_runs(detail.flow_run_id))]
    # one task run each (the truck's retries are attempts of its one task run)
    assert len(finished_task_runs(2, flow_run_ids=restaurant_runs, name="13-crm_sync")) == 2
    table_key = artifact_key(batch_id, get_batch(batch_id).name, "restaurants")
    table = run_coroutine(latest_artifact(table_key))
    rows = table if isinstance(table, list) else json.loads(table)
    assert [r["plugin_steps"] for r in rows] == [
        "09-menu_import: completed, 13-crm_sync: completed",
        "13-crm_sync: completed",
    ]


async def latest_artifact(key: str) -> Any:
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return max(found, key=lambda a: a.created or 0).data


def run_coroutine(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


def test_a_permanent_error_fails_only_that_restaurant_and_its_retry_keeps_the_graph(
    org_id, sandbox, trucks, crm
) -> None:
    with use_registry(trucks):
        batch_id, (refused, accepted) = make_batch(org_id, [RESTAURANT, RESTAURANT + 1])
        crm.script[str(refused)] = [400]
        detail = run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("completed", 1, 1)
    failed = steps_of(detail, refused)["crm_sync"]
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.error_message and "refused the restaurant: 400" in failed.error_message
    assert all(
        s.status in ("completed", "skipped")
        for k, s in steps_of(detail, refused).items()
        if k != "crm_sync"
    )
    assert steps_of(detail, accepted)["crm_sync"].status == "completed"

    # the plugin is uninstalled: the retry batch still has the graph its origin recorded ...
    with use_registry(HandlerRegistry()):
        retry_id = retry_failed(batch_id).batch_id
        with session_scope() as session:
            graphs = [session.get(Batch, b).step_graph for b in (batch_id, retry_id)]  # type: ignore[union-attr]
        assert graphs[0] is not None and graphs[0] == graphs[1]
        retry = get_batch(retry_id)
        assert [s.step_key for s in retry.jobs[0].steps][-1] == "crm_sync"
        # ... and pre-flight refuses to run it here, before anything starts
        with pytest.raises(
            ConfigurationError, match=r"needs step handlers .*regbatch_trucks:crm_sync"
        ):
            run_batch(retry_id)
    assert get_batch(retry_id).status in ("draft", "pending")
    with use_registry(trucks):
        final = run_batch(retry_id)
    assert (final.status, final.completed) == ("completed", 1)
    assert steps_of(final, refused)["crm_sync"].status == "completed"
    assert steps_of(final, refused)["restaurant_registration"].carried_over


def test_a_batch_created_before_the_plugin_was_installed_keeps_its_twelve_steps(
    org_id, sandbox, trucks, crm
) -> None:
    with use_registry(HandlerRegistry()):
        batch_id, (truck,) = make_batch(org_id, [TRUCK])
    with use_registry(trucks):
        detail = run_batch(batch_id)
    assert (detail.status, detail.completed) == ("completed", 1)
    steps = steps_of(detail, truck)
    assert len(steps) == 12 and all(s.handler is None for s in steps.values())
    assert "menu_handler" not in (steps["menu_import"].result_data or {})
    assert crm.calls(truck) == []


def test_a_worker_without_the_plugin_refuses_the_restaurant_instead_of_running_built_in_steps(
    org_id, sandbox, trucks, crm
) -> None:
    from regbatch.flows.restaurant import register_restaurant

    with use_registry(trucks):
        batch_id, (truck,) = make_batch(org_id, [TRUCK])
    job_id = job_id_of(get_batch(batch_id), truck)
    with use_registry(HandlerRegistry()):  # this process (a worker) lacks regbatch-trucks
        state = run_coroutine(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ConfigurationError)
    assert "needs step handlers this process does not have" in str(error)
    assert "regbatch_trucks:import_truck_menu (trucks)" in str(error)
    assert "install the plugin(s) trucks" in str(error)
    steps = steps_of(get_batch(batch_id), truck)
    assert all(s.status == "pending" and s.attempts == 0 for s in steps.values())
    assert ledger_for(sandbox, truck) == [] and crm.calls(truck) == []
    # the same restaurant, given to a process that has the plugin, runs it
    with use_registry(trucks):
        state = run_coroutine(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_completed()
    assert steps_of(get_batch(batch_id), truck)["menu_import"].handler == TRUCK_MENU


@pytest.mark.slow
def test_a_killed_runner_resumed_does_not_run_a_completed_handler_step_again(
    org_id, sandbox, trucks, trucks_path, crm, tmp_path
) -> None:
    sandbox.set_latency(default_ms=300)
    with use_registry(trucks):
        batch_id, ids = make_batch(
            org_id, [TRUCK, RESTAURANT, 1], execution_mode="parallel", concurrency=3
        )
    # the runner finds the plugin through its entry point on PYTHONPATH, as an installed one
    env = {**os.environ, "REGBATCH_LEASE_SECONDS": "8", "PYTHONPATH": trucks_path}
    log = open(tmp_path / "runner.log", "w")  # noqa: SIM115
    runner = subprocess.Popen(
        [REGBATCH, "batch", "run", str(batch_id)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def synced_and_unfinished() -> list[uuid.UUID]:
        detail = get_batch(batch_id)
        synced = [
            j.restaurant_id
            for j in detail.jobs
            if any(s.step_key == "crm_sync" and s.status == "completed" for s in j.steps)
        ]
        return synced if detail.completed < 3 else []

    try:
        synced = wait_for(synced_and_unfinished, timeout=120, interval=0.05)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        log.close()
    calls_at_kill = {rid: crm.calls(rid) for rid in synced}
    assert get_batch(batch_id).status == "in_progress"

    wait_for(lambda: lease_expired(batch_id), timeout=30, interval=0.5)
    recovered = run(
        "recover",
        "--org",
        str(org_id),
        "--json",
        env={"REGBATCH_LEASE_SECONDS": "8", "PYTHONPATH": trucks_path},
        check=False,
    )
    assert recovered_status(recovered, batch_id) == "completed", recovered.stdout + recovered.stderr

    final = get_batch(batch_id)
    assert (final.status, final.completed) == ("completed", 3)
    for rid in ids:
        assert steps_of(final, rid)["crm_sync"].status == "completed"
    for rid, calls in calls_at_kill.items():
        assert crm.calls(rid) == calls  # completed before the kill: never called again
    effects = Counter((e["restaurant"], e["step"]) for e in sandbox.ledger() if not e["replay"])
    assert effects[(str(ids[0]), "menu_import")] == 1


@contextmanager
def process_worker(pool: str, folder: Path, env: dict[str, str]) -> Iterator[None]:
    """`regbatch worker` on `pool` in its own process (and session), stopped afterwards."""
    with open(folder / f"worker-{secrets.token_hex(2)}.log", "w") as log:
        worker = subprocess.Popen(
            [REGBATCH, "worker", "--pool", pool, "--limit", "2"],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            yield
        finally:
            stop_group(worker, WORKER_GRACE_S)


@pytest.mark.slow
def test_distributed_a_worker_without_the_plugin_refuses_and_one_with_it_runs_it(
    org_id, sandbox, trucks, trucks_path, crm, monkeypatch, tmp_path
) -> None:
    from regbatch.flows import dispatch

    monkeypatch.setattr(dispatch, "MAX_ORCHESTRATION_RETRIES", 1)  # give up on the refusal soon
    monkeypatch.setattr(dispatch, "BACKOFF_S", (0.5,))
    pool = f"regbatch-plugin-{secrets.token_hex(3)}"
    deployment = asyncio.run(deploy(pool, pool, tmp_path))
    # the runner has the plugin; the first worker has not
    with settings_env({"REGBATCH_RESTAURANT_DEPLOYMENT": deployment}), use_registry(trucks):
        batch_id, (truck,) = make_batch(
            org_id, [TRUCK], execution_mode="distributed", concurrency=1
        )
        with process_worker(pool, tmp_path, {**os.environ}):
            refused = run_batch(batch_id)
        assert refused.status == "paused", refused.pause_reason
        reason = str(refused.pause_reason)
        assert "could not be run after 1 orchestration retries" in reason
        assert "needs step handlers this process does not have" in reason
        assert "install the plugin(s) trucks" in reason
        steps = steps_of(refused, truck)
        assert all(s.status == "pending" and s.attempts == 0 for s in steps.values())
        assert ledger_for(sandbox, truck) == [] and crm.calls(truck) == []
        # a worker with regbatch-trucks installed takes the resumed restaurant and runs it
        resume_batch(batch_id)
        env = {**os.environ, "PYTHONPATH": trucks_path}
        with process_worker(pool, tmp_path, env):
            done = run_batch(batch_id)
    assert (done.status, done.completed, done.failed) == ("completed", 1, 0)
    steps = steps_of(done, truck)
    assert steps["menu_import"].handler == TRUCK_MENU
    assert steps["menu_import"].result_data is not None
    assert steps["menu_import"].result_data["menu_handler"] == "regbatch-trucks"
    assert steps["crm_sync"].status == "completed" and len(crm.calls(truck)) == 1
