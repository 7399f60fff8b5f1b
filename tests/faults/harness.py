"""The fault harness: one parallel batch under a production fault, checked against invariants.

Every scenario runs the same shape of batch as the reference run, with the limits a real platform
imposes: the account-creation limit on both sides (the sandbox refuses faster creations with a
429), latency on every step, restaurants that fail transiently and permanently. Runners are real
`regbatch` processes, so they can be killed, frozen and cut off. After each fault the batch must
end exactly as an uninterrupted run of the same restaurants ended (`Signature`), with:

* zero duplicate side effects on the platform (its ledger: one performed call per restaurant and
  step at most);
* no step left `in_progress` or `retrying`; the batch's counters equal its job rows;
* no Prefect flow run of the batch left unfinished (Running, Pending, Cancelling);
* a cancelled batch stays cancelled, and no platform call started after it was cancelled.

Size and rounds: REGBATCH_FAULT_SIZE restaurants (default 16), REGBATCH_FAULT_ROUNDS rounds of each
scenario (default 1; the long version in bench/README.md runs 5 rounds of 40).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep
from regbatch.sandbox.control import SandboxControl
from regbatch.services.batches import get_batch
from regbatch.statuses import JobStatus
from tests.cli import REGBATCH
from tests.factories import make_restaurants

SIZE = int(os.environ.get("REGBATCH_FAULT_SIZE", "16"))
ROUNDS = int(os.environ.get("REGBATCH_FAULT_ROUNDS", "1"))
CONCURRENCY = 6
LEASE_S = 3.0
SPACING_S = 0.3  # the account-creation limit, on both sides
LATENCY_MS = 60
ALL_STEPS_ON = {"onboarding": {"create_user": True, "sync": True}}

# The same faults in every run, by restaurant position: what an uninterrupted run ends with.
PLAN: dict[int, list[dict[str, Any]]] = {
    2: [{"step": "services_configuration", "kind": "permanent"}],
    5: [{"step": "restaurant_registration", "kind": "transient", "times": 2}],
    9: [{"step": "account_registration", "kind": "permanent"}],
    12: [{"step": "menu_import", "kind": "success_false"}],
}

# What every runner of the harness runs with (added to the test session's environment).
RUNNER_ENV = {
    "REGBATCH_LEASE_SECONDS": str(LEASE_S),
    "REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": str(SPACING_S),
    "PYTHONUNBUFFERED": "1",  # a killed runner's log keeps what it printed
}

Signature = dict[int, tuple[str, tuple[str, ...]]]


@dataclass
class Scenario:
    """One batch of the harness and what happened to it."""

    batch_id: uuid.UUID
    organisation_id: uuid.UUID
    name: str
    restaurant_ids: list[uuid.UUID]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `regbatch ARGS` in its own process group, its output in the scenario's logs."""
        number = len(self.processes)
        log = (self.logs / f"{number:02d}-{args[0]}.log").open("wb")
        process = subprocess.Popen(
            [REGBATCH, *args],
            env={**os.environ, **RUNNER_ENV, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def run_batch(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.spawn("batch", "run", str(self.batch_id), env=env)

    def recover(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`regbatch recover` of the scenario's organisation: the stalled batches other tests
        of the session leave behind are not this scenario's to take over."""
        return self.spawn("recover", "--org", str(self.organisation_id), env=env)

    def serve(self) -> subprocess.Popen[bytes]:
        """`regbatch serve`, once its deployments are on the Prefect server."""
        process = self.spawn("serve")
        wait_for(lambda: _served() or process.poll() is not None, 90, 0.5, "regbatch serve")
        assert process.poll() is None, self.output(process)
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        number = self.processes.index(process)
        return next(self.logs.glob(f"{number:02d}-*.log")).read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                kill(process, signal.SIGKILL)


def new_scenario(
    org_id: uuid.UUID, sandbox: SandboxControl, logs: Path, size: int = SIZE
) -> Scenario:
    """A parallel batch of `size` fresh restaurants with the plan's faults armed."""
    name = f"faults {uuid.uuid4().hex[:10]}"
    with session_scope() as session:
        restaurant_ids = make_restaurants(session, org_id, size)
        batch = batches.create_batch(
            session,
            organisation_id=org_id,
            name=name,
            restaurant_ids=restaurant_ids,
            settings=ALL_STEPS_ON,
            execution_mode="parallel",
            concurrency=CONCURRENCY,
            breaker_threshold=1.0,  # the breaker is not under test: never trips here
        )
        batch_id = batch.id
    rules = [
        {"restaurant": str(restaurant_ids[position]), **rule}
        for position, position_rules in PLAN.items()
        if position < size
        for rule in position_rules
    ]
    sandbox.set_faults(rules)
    sandbox.set_latency(default_ms=LATENCY_MS)
    sandbox.set_account_spacing(SPACING_S)
    logs.mkdir(parents=True, exist_ok=True)
    return Scenario(batch_id, org_id, name, restaurant_ids, logs)


def kill(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process's whole group (the runner and anything it started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _served() -> bool:
    from prefect.client.orchestration import get_client

    async def registered() -> bool:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(
                "registration-batch/registration-batch"
            )
            return deployment.work_pool_name is None

    try:
        return asyncio.run(registered())
    except Exception:  # not there yet
        return False


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def batch_status(batch_id: uuid.UUID) -> str:
    with session_scope() as session:
        return str(session.scalar(select(Batch.status).where(Batch.id == batch_id)))


def steps_done(batch_id: uuid.UUID) -> int:
    """How many of the batch's steps have completed."""
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(JobStep)
                .join(Job, Job.id == JobStep.job_id)
                .where(Job.batch_id == batch_id, JobStep.status == "completed")
            )
            or 0
        )


def lease_expired(batch_id: uuid.UUID) -> bool:
    from regbatch.db.types import utcnow

    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        return batch.lease_expires_at is None or batch.lease_expires_at < utcnow()


def signature(batch_id: uuid.UUID) -> Signature:
    """Each restaurant's outcome by position: its job's status and its steps' statuses."""
    detail = get_batch(batch_id)
    return {job.position: (job.status, tuple(s.status for s in job.steps)) for job in detail.jobs}


# --- the invariants ---------------------------------------------------------------------------


def check_finished_like(
    scenario: Scenario,
    reference: Signature,
    sandbox: SandboxControl,
    prefect_api: str | None = None,
) -> None:
    """The batch ended exactly as the uninterrupted run did, with every invariant holding."""
    detail = get_batch(scenario.batch_id)
    assert detail.status == "completed", (detail.status, detail.pause_reason)
    got = signature(scenario.batch_id)
    differences = {
        p: (got.get(p), reference.get(p)) for p in reference if got.get(p) != reference[p]
    }
    assert not differences, f"outcomes differ from the uninterrupted run: {differences}"
    check_common(scenario, sandbox, prefect_api)


def check_common(
    scenario: Scenario, sandbox: SandboxControl, prefect_api: str | None = None
) -> None:
    """The invariants every ending shares: ledger, rows, counters, Prefect runs."""
    check_no_duplicate_side_effects(scenario, sandbox)
    check_no_step_left_active(scenario.batch_id)
    check_counters(scenario.batch_id)
    check_no_flow_run_left_unfinished(scenario.name, api_url=prefect_api)


def check_no_duplicate_side_effects(scenario: Scenario, sandbox: SandboxControl) -> None:
    mine = {str(r) for r in scenario.restaurant_ids}
    performed = Counter(
        (e["restaurant"], e["step"])
        for e in sandbox.ledger()
        if e["restaurant"] in mine and not e["replay"]
    )
    twice = {key: n for key, n in performed.items() if n > 1}
    assert not twice, f"the platform performed these more than once: {twice}"


def check_no_step_left_active(batch_id: uuid.UUID) -> None:
    with session_scope() as session:
        active = session.execute(
            select(Job.position, JobStep.step_key, JobStep.status)
            .join(Job, Job.id == JobStep.job_id)
            .where(Job.batch_id == batch_id, JobStep.status.in_(["in_progress", "retrying"]))
        ).all()
    assert not active, f"steps left active: {active}"


def check_counters(batch_id: uuid.UUID) -> None:
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        counts = Counter(session.scalars(select(Job.status).where(Job.batch_id == batch_id)).all())
    assert (
        batch.completed_restaurants,
        batch.failed_restaurants,
        batch.cancelled_restaurants,
        batch.total_restaurants,
    ) == (
        counts[JobStatus.COMPLETED] + counts[JobStatus.SKIPPED],
        counts[JobStatus.FAILED],
        counts[JobStatus.CANCELLED],
        sum(counts.values()),
    ), (batch.completed_restaurants, batch.failed_restaurants, counts)


def check_no_flow_run_left_unfinished(
    batch_name: str, timeout: float = 30.0, api_url: str | None = None
) -> None:
    """Every flow run of the batch (its runners' and their restaurant subflows) has ended.

    Prefect ends a cancelled run's runs within seconds of the cancel, hence a wait.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    unfinished: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with temporary_settings({PREFECT_API_URL: api_url or PREFECT_API_URL.value()}):
            unfinished = asyncio.run(unfinished_runs(batch_name))
        if not unfinished:
            return
        time.sleep(1.0)
    raise AssertionError(f"flow runs left unfinished in Prefect: {unfinished}")


async def unfinished_runs(batch_name: str) -> list[tuple[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterParentFlowRunId,
    )

    from regbatch.runner.prefect_runs import UNFINISHED

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"batch: {batch_name}"]))
        )
        ids = [run.id for run in runs]
        children = (
            await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=ids)
                ),
                limit=200,
            )
            if ids
            else []
        )
    assert runs, f"no flow run named 'batch: {batch_name}' in Prefect"
    return [
        (run.name, str(run.state.type))
        for run in [*runs, *children]
        if run.state is not None and run.state.type in UNFINISHED
    ]


def platform_calls_after(
    scenario: Scenario, sandbox: SandboxControl, moment: datetime
) -> list[dict[str, Any]]:
    """Step requests of the batch's restaurants that reached the platform after `moment`."""
    mine = {str(r) for r in scenario.restaurant_ids}
    return [
        r
        for r in sandbox.requests()
        if r["restaurant"] in mine and datetime.fromisoformat(r["received_at"]) > moment
    ]
