"""Distributed mode: each restaurant is a flow run of the `register-restaurant` deployment on a
work pool, run by two process workers; the batch flow waits and reads outcomes from PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import cast

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import EntrypointType

from regbatch.api.running import run_batch
from regbatch.flows.restaurant import register_restaurant
from tests.flows.conftest import new_batch
from tests.processes import WORKER_GRACE_S, stop_group
from tests.settings_env import settings_env

pytestmark = [pytest.mark.flow, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
REGBATCH = str(Path(sys.executable).with_name("regbatch"))


async def deploy(pool: str, name: str, working_dir: Path) -> str:
    """The deployment as prefect.yaml declares it (the installed package's module, no source),
    its runs working in `working_dir`."""
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment = await register_restaurant.ato_deployment(
        name=name,
        work_pool_name=pool,
        entrypoint_type=EntrypointType.MODULE_PATH,
        job_variables={"working_dir": str(working_dir)},
    )
    assert deployment.entrypoint == "regbatch.flows.restaurant.register_restaurant"
    # apply is a coroutine in async code; its hints also admit the sync variant's UUID
    await cast(Awaitable[uuid.UUID], deployment.apply())
    return f"register-restaurant/{name}"


def _decoy_project(folder: Path) -> Path:
    """A Prefect project of someone else's: its own flows/ package and an invoke tasks.py.

    Before regbatch was one package, its modules `flows` and `tasks` were shadowed by these in
    a worker's working directory, and the worker loaded the wrong code.
    """
    (folder / "flows").mkdir()
    (folder / "flows" / "__init__.py").write_text("raise ImportError('the decoy flows/')\n")
    (folder / "flows" / "restaurant.py").write_text("raise ImportError('the decoy flow')\n")
    (folder / "tasks.py").write_text("raise ImportError('the decoy tasks.py')\n")
    (folder / "db").mkdir()
    (folder / "db" / "__init__.py").write_text("raise ImportError('the decoy db/')\n")
    return folder


@pytest.fixture(scope="module")
def deployment_with_two_workers(sandbox_server, tmp_path_factory) -> Iterator[str]:
    pool = f"regbatch-test-{secrets.token_hex(3)}"
    # the runs work in someone else's project folder (first on their import path)
    project = _decoy_project(tmp_path_factory.mktemp("someone-elses-project"))
    deployment = asyncio.run(deploy(pool, pool, project))
    logs = tmp_path_factory.mktemp("workers")
    workers = [
        subprocess.Popen(
            [REGBATCH, "worker", "--pool", pool, "--limit", "3"],
            cwd=project,
            stdout=open(logs / f"worker-{n}.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env={**os.environ},
            start_new_session=True,
        )
        for n in (1, 2)
    ]
    try:
        yield deployment
    finally:
        for worker in workers:
            stop_group(worker, WORKER_GRACE_S)


def test_distributed_batch_runs_each_restaurant_on_the_pool_beside_a_decoy_project(
    org_id, sandbox, deployment_with_two_workers
) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 6, execution_mode="distributed", concurrency=4)
    sandbox.set_faults(
        [{"restaurant": str(restaurant_ids[3]), "step": "menu_import", "kind": "permanent"}]
    )
    with settings_env({"REGBATCH_RESTAURANT_DEPLOYMENT": deployment_with_two_workers}):
        detail = run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("completed", 5, 1)
    assert sandbox.stats()["max_in_flight_restaurants"] <= 4

    async def runs():
        async with get_client() as client:
            return [await client.read_flow_run(cast(uuid.UUID, job.flow_run_id)) for job in jobs]

    from regbatch.db.engine import session_scope
    from regbatch.db.models import Job

    with session_scope() as session:
        jobs = session.query(Job).filter(Job.batch_id == batch_id).order_by(Job.position).all()
    flow_runs = asyncio.run(runs())
    assert len({run.id for run in flow_runs}) == 6
    assert all(run.deployment_id is not None for run in flow_runs)
    assert [run.state.type.value for run in flow_runs].count("FAILED") == 1
    assert {run.name for run in flow_runs} == {j.restaurant_name for j in detail.jobs}
