"""The batch flow, for real: modes, isolation, breaker, pause/resume, cancel, retry-failed,
artifacts. PostgreSQL + the sandbox over HTTP + a Prefect server on PostgreSQL."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from regbatch import heap
from regbatch.api.running import run_batch
from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.oplog import read_log
from regbatch.errors import ConflictError
from regbatch.services import lifecycle
from regbatch.services.batches import get_batch
from tests.flows.conftest import new_batch, run
from tests.flows.prefect_records import finished_task_runs, restaurant_flow_runs

pytestmark = pytest.mark.flow


def fail_restaurant(sandbox, restaurant_id: uuid.UUID, step: str = "menu_import") -> dict:
    return {"restaurant": str(restaurant_id), "step": step, "kind": "permanent"}


def side_effects(sandbox, restaurant_ids=None) -> Counter:
    """(restaurant, step) -> how many times the platform really performed it."""
    wanted = {str(r) for r in restaurant_ids} if restaurant_ids else None
    return Counter(
        (e["restaurant"], e["step"])
        for e in sandbox.ledger()
        if not e["replay"] and (wanted is None or e["restaurant"] in wanted)
    )


def wait_for(predicate, timeout: float = 60, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize(("mode", "concurrency"), [("sequential", 1), ("parallel", 3)])
def test_a_failed_restaurant_never_stops_the_others(org_id, sandbox, mode, concurrency) -> None:
    sandbox.set_latency(default_ms=30)
    batch_id, _, restaurant_ids = new_batch(org_id, 6, execution_mode=mode, concurrency=concurrency)
    sandbox.set_faults([fail_restaurant(sandbox, restaurant_ids[1])])
    detail = run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("completed", 5, 1)
    statuses = {j.restaurant_id: j.status for j in detail.jobs}
    assert statuses[restaurant_ids[1]] == "failed"
    assert all(s == "completed" for r, s in statuses.items() if r != restaurant_ids[1])
    assert detail.started_at and detail.completed_at
    in_flight = sandbox.stats()["max_in_flight_restaurants"]
    assert in_flight <= concurrency
    if mode == "parallel":
        assert in_flight > 1  # it did run restaurants at the same time
    with session_scope() as session:
        operations = [e.operation for e in read_log(session, batch_id)]
    assert operations[:2] == ["batch_created", "batch_started"]
    assert operations[-1] == "batch_completed"


def test_sequential_runs_restaurants_in_the_batch_order(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 3)
    run_batch(batch_id)
    first_call: dict[str, Any] = {}
    for entry in sandbox.ledger():
        first_call.setdefault(entry["restaurant"], entry["at"])
    assert sorted(first_call, key=first_call.__getitem__) == [str(r) for r in restaurant_ids]


def test_more_than_half_failing_fails_the_batch(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 3, breaker_min_finished=10)
    sandbox.set_faults([fail_restaurant(sandbox, r) for r in restaurant_ids[:2]])
    detail = run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("failed", 1, 2)


def test_breaker_pauses_the_batch_and_nothing_starts_after_it(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 6, breaker_min_finished=3)
    sandbox.set_faults(
        [fail_restaurant(sandbox, r, "account_registration") for r in restaurant_ids]
    )
    detail = run_batch(batch_id)
    assert detail.status == "paused"
    assert (detail.pause_reason or "").startswith(
        "breaker tripped: 3 of 3 finished restaurants failed"
    )
    assert detail.failed == 3
    assert {s for s in (j.status for j in detail.jobs[3:])} == {"pending"}
    called = {e["restaurant"] for e in sandbox.ledger()}
    assert called <= {str(r) for r in restaurant_ids[:3]}
    with session_scope() as session:
        operations = [e.operation for e in read_log(session, batch_id)]
    assert "breaker_tripped" in operations and operations[-1] == "batch_paused"
    # the user can cancel it (or resume, or retry the failed): cancel ends it at once
    cancelled = lifecycle.cancel_batch(batch_id)
    assert cancelled.status == "cancelled"
    assert {j.status for j in cancelled.jobs[3:]} == {"cancelled"}


def _start_in_thread(batch_id: uuid.UUID) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def target() -> None:
        try:
            result["detail"] = run_batch(batch_id)
        except BaseException as exc:  # surfaced by the test
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_pause_then_resume_equals_an_uninterrupted_run(org_id, sandbox) -> None:
    sandbox.set_latency(default_ms=60)
    batch_id, _, restaurant_ids = new_batch(org_id, 4)
    thread, result = _start_in_thread(batch_id)
    wait_for(lambda: get_batch(batch_id).completed >= 1)
    lifecycle.pause_batch(batch_id)
    thread.join(60)
    assert "error" not in result, result.get("error")
    paused = result["detail"]
    assert paused.status == "paused" and paused.paused_at is not None
    assert 1 <= paused.completed < 4
    assert not [s for j in paused.jobs for s in j.steps if s.status in ("in_progress", "retrying")]
    calls_when_paused = len(sandbox.ledger())
    _assert_the_pause_is_logged_at_info(paused.flow_run_id)
    time.sleep(1.0)
    assert len(sandbox.ledger()) == calls_when_paused  # nothing calls the platform while paused
    lifecycle.resume_batch(batch_id)
    final = run_batch(batch_id)
    assert (final.status, final.completed, final.failed) == ("completed", 4, 0)
    # the same outcome as an uninterrupted run: each step performed exactly once, no replays
    effects = side_effects(sandbox, restaurant_ids)
    completed_steps = {
        (str(j.restaurant_id), s.step_key)
        for j in final.jobs
        for s in j.steps
        if s.status == "completed"
    }
    assert set(effects) == completed_steps and set(effects.values()) == {1}
    assert not any(e["replay"] for e in sandbox.ledger())
    assert all(s.attempts == 1 for j in final.jobs for s in j.steps)


def _assert_the_pause_is_logged_at_info(flow_run_id: uuid.UUID | None) -> None:
    """The paused run's logs say so at INFO; no run of it logs its paused end as an error."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    assert flow_run_id is not None

    async def read_logs() -> list:
        async with get_client() as client:
            children = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
                )
            )
            ids = [flow_run_id, *(c.id for c in children)]
            return await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))
            )

    def said_paused() -> list:
        logs = run(read_logs())
        return logs if any(r.message.startswith("Batch paused, not failed.") for r in logs) else []

    logs = wait_for(said_paused, timeout=30, interval=0.5)
    (line,) = [r for r in logs if r.message.startswith("Batch paused, not failed.")]
    assert line.level == logging.INFO and "resume it to continue where it stopped" in line.message
    errors = [r.message for r in logs if r.level >= logging.ERROR]
    assert not [m for m in errors if "Paused" in m], errors


def test_cancel_mid_batch_leaves_nothing_in_progress(org_id, sandbox) -> None:
    sandbox.set_latency(default_ms=60)
    batch_id, _, _ = new_batch(org_id, 5, execution_mode="parallel", concurrency=2)
    thread, result = _start_in_thread(batch_id)
    wait_for(lambda: get_batch(batch_id).completed >= 1)
    lifecycle.cancel_batch(batch_id)
    thread.join(60)
    assert "error" not in result, result.get("error")
    detail = get_batch(batch_id)
    assert detail.status == "cancelled" and detail.cancelled_at is not None
    assert detail.cancelled >= 1 and detail.completed + detail.cancelled == 5
    active = [
        s
        for j in detail.jobs
        for s in j.steps
        if s.status in ("in_progress", "retrying", "pending")
    ]
    assert active == []
    assert {j.status for j in detail.jobs} <= {"completed", "cancelled"}
    settled = len(sandbox.ledger())
    time.sleep(1.0)
    assert len(sandbox.ledger()) == settled
    with pytest.raises(ConflictError, match="is 'cancelled'"):
        run_batch(batch_id)


def test_retry_failed_runs_only_the_failed_steps(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 3)
    broken = restaurant_ids[2]
    sandbox.set_faults([fail_restaurant(sandbox, broken)])
    original = run_batch(batch_id)
    assert (original.status, original.failed) == ("completed", 1)
    before = side_effects(sandbox)
    new_id = lifecycle.retry_failed(batch_id).batch_id
    retry = get_batch(new_id)
    assert retry.retry_of_batch_id == batch_id and retry.name.endswith(" - Retry")
    assert [j.restaurant_id for j in retry.jobs] == [broken]
    steps = {s.step_key: s for s in retry.jobs[0].steps}
    assert {k for k, s in steps.items() if s.status == "pending"} == {
        "menu_import",
        "option_sets",
        "item_tags",
    }
    assert all(
        s.carried_over and s.result_data for k, s in steps.items() if s.status == "completed"
    )
    sandbox.clear_faults()
    final = run_batch(new_id)
    assert (final.status, final.completed) == ("completed", 1)
    new_effects = side_effects(sandbox) - before
    assert new_effects == Counter(
        {
            (str(broken), "menu_import"): 1,
            (str(broken), "option_sets"): 1,
            (str(broken), "item_tags"): 1,
        }
    )
    # the original is untouched but for a log entry
    unchanged = get_batch(batch_id)
    assert (unchanged.status, unchanged.completed, unchanged.failed) == ("completed", 2, 1)
    with session_scope() as session:
        log = read_log(session, batch_id)
    assert log[-1].operation == "retry_batch_created"
    assert log[-1].details["new_batch_id"] == str(new_id)


def test_orchestration_errors_requeue_a_restaurant_instead_of_failing_it(
    org_id, sandbox, monkeypatch
) -> None:
    import regbatch.flows.batch as batch_flow
    import regbatch.flows.dispatch as dispatch

    real = dispatch.run_in_process
    failures: Counter = Counter()

    async def flaky_start(job, lease) -> None:
        # the first two starts fail as a subflow that Prefect could not create (e.g. a 503)
        if failures[job.id] < 2:
            failures[job.id] += 1
            raise RuntimeError("503 Service Unavailable: database is locked")
        await real(job, lease)

    monkeypatch.setattr(dispatch, "BACKOFF_S", (0.05, 0.05))
    monkeypatch.setattr(batch_flow, "run_in_process", flaky_start)
    batch_id, _, _ = new_batch(org_id, 2, execution_mode="parallel", concurrency=2)
    detail = run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("completed", 2, 0)
    with session_scope() as session:
        jobs = batches.unfinished_jobs(session, batch_id)
        attempts = [j.dispatch_attempts for j in session.scalars(batches.select_jobs(batch_id))]
    assert jobs == [] and attempts == [3, 3]


def test_artifacts_show_progress_table_and_summary(org_id, sandbox) -> None:
    """The batch run has three artifacts, one per kind: the table is updated in place, never
    created again, and each description carries the numbers."""
    batch_id, _, restaurant_ids = new_batch(org_id, 3, name="Artifacts: Q4 / test")
    sandbox.set_faults([fail_restaurant(sandbox, restaurant_ids[0])])
    detail = run_batch(batch_id)
    flow_run_id = detail.flow_run_id
    assert flow_run_id is not None

    async def read_run_artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )

    found = run(read_run_artifacts())
    prefix = f"batch-artifacts-q4-test-{batch_id.hex[:8]}"
    by_key = {a.key: a for a in found}
    assert sorted(by_key) == [f"{prefix}-{kind}" for kind in ("progress", "restaurants", "summary")]
    assert len(found) == 3, [(a.key, a.description) for a in found]

    progress = by_key[f"{prefix}-progress"]
    assert progress.data == 100 and progress.description == "3 of 3 restaurants finished"
    table = by_key[f"{prefix}-restaurants"]
    assert table.description == ("3 of 3 restaurants finished: 2 completed, 1 failed")
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    assert [r["restaurant"] for r in rows] == [j.restaurant_name for j in detail.jobs]
    assert [r["status"] for r in rows] == ["failed", "completed", "completed"]
    assert rows[0]["error"].startswith("09-menu_import: ")
    summary_artifact = by_key[f"{prefix}-summary"]
    assert summary_artifact.description == ("completed: 2 of 3 restaurants registered, 1 failed")
    summary = summary_artifact.data
    assert f'# Batch: "{detail.name}"' in summary
    assert "| Total | 3 |" in summary and "| Successful | 2 (67%) |" in summary
    assert "| Failed | 1 (33%) |" in summary
    assert "✗ Failed (09-menu_import: " in summary
    assert f"regbatch batch retry-failed {batch_id}" in summary


def test_batch_and_restaurant_runs_carry_their_own_tags(org_id, sandbox) -> None:
    """A saved filter on tag regbatch-batch lists batches without their restaurants; the steps'
    task runs carry no tag (a tagged task run asks the server for tag concurrency slots)."""
    batch_id, _, _ = new_batch(org_id, 2, execution_mode="parallel", concurrency=2)
    flow_run_id = run_batch(batch_id).flow_run_id
    assert flow_run_id is not None

    async def read_runs():
        async with get_client() as client:
            batch_run = await client.read_flow_run(flow_run_id)
        return batch_run, await restaurant_flow_runs(flow_run_id)

    batch_run, restaurants = run(read_runs())
    steps = finished_task_runs(24, flow_run_ids=[r.id for r in restaurants])
    assert set(batch_run.tags) == {"regbatch", "regbatch-batch"}
    assert len(restaurants) == 2
    assert [set(r.tags) for r in restaurants] == [{"regbatch", "regbatch-restaurant"}] * 2
    assert len(steps) == 24 and all(step.tags == [] for step in steps)


def test_a_runner_of_its_own_freezes_its_start_up_heap_once(org_id, sandbox, monkeypatch) -> None:
    """regbatch.heap: from the Python API the caller's collector is left alone; in a process of
    regbatch's own (the CLI, a deployment's run) the first batch run freezes, the next do not."""
    frozen: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(1))  # this test process stays as is
    monkeypatch.setattr(heap, "_frozen", False)
    monkeypatch.setattr(heap, "_claimed", False)
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)

    def run_one() -> str:
        return run_batch(new_batch(org_id, 1)[0]).status

    assert run_one() == "completed" and frozen == []
    monkeypatch.setattr(heap, "_claimed", True)
    assert run_one() == "completed" and frozen == [1]
    assert run_one() == "completed" and frozen == [1]
