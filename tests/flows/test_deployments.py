"""Deployments: `prefect deploy --all` works against a local Prefect server, and a batch
triggered through the Prefect API (and through `regbatch batch start`) runs under `regbatch serve`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectAlreadyExists

from regbatch.batch_rules import MAX_CONCURRENCY
from regbatch.deployments.catalog import CATALOG, WORK_POOL
from regbatch.services.batches import get_batch
from tests.cli import REGBATCH, cli_json
from tests.flows.conftest import new_batch
from tests.flows.test_batch import wait_for
from tests.prefect_servers import PREFECT
from tests.processes import stop_group

pytestmark = [pytest.mark.flow, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


async def _ensure_pool() -> None:
    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))


def test_prefect_deploy_all_creates_every_deployment(prefect_server) -> None:
    asyncio.run(_ensure_pool())
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    async def read() -> dict:
        async with get_client() as client:
            return {s.full_name: await client.read_deployment_by_name(s.full_name) for s in CATALOG}

    deployments = asyncio.run(read())
    assert all(d.work_pool_name == WORK_POOL for d in deployments.values())
    weekly = deployments["template-batch/auckland-hot-leads-weekly"]
    (schedule,) = weekly.schedules
    assert schedule.schedule.cron == "0 9 * * 1"
    assert schedule.schedule.timezone == "Pacific/Auckland"
    assert weekly.parameters["run"]["template"] == "Auckland hot leads"
    # the UI form comes from the typed parameter model
    form = deployments["registration-batch/registration-batch"].parameter_openapi_schema
    run_model = form["definitions"]["BatchRun"]["properties"]
    assert {"batch_id", "organisation", "restaurant_ids", "execution_mode", "concurrency"} <= set(
        run_model
    )
    # concurrency may be left empty (the server's default); filled in, it is 1 to 200
    concurrency = run_model["concurrency"]
    assert concurrency["default"] is None
    assert {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY} in concurrency["anyOf"]
    assert {"type": "null"} in concurrency["anyOf"]
    assert required_without_default(form) == []  # Quick run sends no parameters
    for name, deployment in deployments.items():  # nor may any other deployment's form need one
        assert not deployment.parameter_openapi_schema.get("required"), name
    assert schedule.slug == "Mondays 09:00 (Pacific/Auckland)"


@pytest.fixture(scope="module")
def served(sandbox_server, tmp_path_factory) -> Iterator[None]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = subprocess.Popen(
        [REGBATCH, "serve"],
        stdout=open(log, "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env={**os.environ},
        start_new_session=True,
    )

    async def registered() -> bool:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(
                "registration-batch/registration-batch"
            )
            return deployment.work_pool_name is None  # served, not on the pool any more

    deadline = time.monotonic() + 90
    while True:
        try:
            if asyncio.run(registered()):
                break
        except Exception:  # not there yet
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "regbatch serve did not serve the deployments:\n" + (
            log.read_text()
        )
        time.sleep(1)
    try:
        yield
    finally:
        stop_group(process)


def test_a_batch_triggered_through_the_prefect_api_runs_under_serve(
    org_id, sandbox, served
) -> None:
    batch_id, _, _ = new_batch(org_id, 2, execution_mode="parallel", concurrency=2)

    async def trigger():
        return await arun_deployment(
            "registration-batch/registration-batch",
            parameters={"run": {"batch_id": str(batch_id)}},
            timeout=0,
        )

    flow_run = asyncio.run(trigger())
    wait_for(lambda: get_batch(batch_id).status in ("completed", "failed"), timeout=180, interval=1)
    detail = get_batch(batch_id)
    assert (detail.status, detail.completed) == ("completed", 2)

    run = asyncio.run(final_state(flow_run.id))
    assert run.state.is_completed(), run.state
    assert run.name == f"batch: {detail.name}"
    assert set(run.tags) == {"regbatch", "regbatch-batch"}
    restaurants = asyncio.run(subflow_runs(flow_run.id))
    assert len(restaurants) == 2
    assert all(set(r.tags) == {"regbatch", "regbatch-restaurant"} for r in restaurants)


def required_without_default(schema: dict) -> list[str]:
    """Every required property, in the parameters and in each model they use, with no default."""
    objects = [("", schema), *((f"{name}.", d) for name, d in schema["definitions"].items())]
    return [
        f"{where}{prop}"
        for where, obj in objects
        for prop in obj.get("required", [])
        if "default" not in obj["properties"][prop]
    ]


def test_quick_run_is_accepted_and_refused_by_the_flow_with_what_to_fill_in(
    sandbox, served
) -> None:
    """The UI's Quick run creates a flow run with no parameters: the server accepts it, and the
    flow ends Failed at once, naming the fields of Custom run; it starts no batch."""
    from regbatch.flow_params import NOTHING_TO_RUN

    async def quick_run():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(
                "registration-batch/registration-batch"
            )
            run = await client.create_flow_run_from_deployment(deployment.id)
            return deployment, run

    deployment, created = asyncio.run(quick_run())
    assert required_without_default(deployment.parameter_openapi_schema) == []
    assert created.parameters == {}
    run = asyncio.run(final_state(created.id))
    assert run.state.is_failed(), run.state
    assert run.state.message == NOTHING_TO_RUN
    assert run.name == "batch: nothing to run"
    assert asyncio.run(subflow_runs(created.id)) == []


async def final_state(flow_run_id):
    async with get_client() as client:
        for _ in range(90):
            run = await client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run
            await asyncio.sleep(1)
        return run


async def subflow_runs(flow_run_id):
    async with get_client() as client:
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )


def test_batch_start_queues_it_and_serve_runs_it(org_id, sandbox, served) -> None:
    batch_id, _, _ = new_batch(org_id, 1)
    started = cli_json("batch", "start", str(batch_id))
    assert started["status"] == "pending" and started["flow_run_id"]
    wait_for(lambda: get_batch(batch_id).status == "completed", timeout=180, interval=1)
