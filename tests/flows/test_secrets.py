"""Secrets (the owner's password, the platform service key) appear in no parameter, log, step
row, audit row or artifact of a registration."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from sqlalchemy import select

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.models import Job, JobStep, OperationLog, Restaurant
from regbatch.db.restaurants import import_restaurants
from regbatch.flows.restaurant import register_restaurant
from tests.factories import restaurant_row
from tests.flows.conftest import ALL_STEPS_ON, lease_of, run

pytestmark = pytest.mark.flow
PASSWORD = "Sup3r-Secret-Owner-Passw0rd!"


async def prefect_records(flow_run_id: uuid.UUID) -> str:
    """Everything Prefect stored about a flow run and its task runs, as one text."""
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        # task runs and logs reach the server asynchronously: wait until all are there
        for _ in range(60):
            task_runs = await client.read_task_runs(flow_run_filter=runs)
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            if len(task_runs) >= 12 and any(
                "Finished in state" in log.message for log in logs if log.task_run_id is None
            ):
                break
            await asyncio.sleep(0.5)
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert len(task_runs) == 12 and logs
    parts = [flow_run.model_dump_json()]
    parts += [t.model_dump_json() for t in task_runs]
    parts += [log.model_dump_json() for log in logs]
    parts += [a.model_dump_json() for a in artifacts]
    return "\n".join(parts)


def database_records(batch_id: uuid.UUID) -> str:
    with session_scope() as session:
        jobs = session.scalars(select(Job).where(Job.batch_id == batch_id)).all()
        steps = session.scalars(select(JobStep).where(JobStep.job_id.in_([j.id for j in jobs])))
        logs = session.scalars(select(OperationLog).where(OperationLog.batch_id == batch_id))
        rows = [
            *(
                {"config": j.execution_config, "error": j.error_message, "details": j.error_details}
                for j in jobs
            ),
            *(
                {
                    "result": s.result_data,
                    "error": s.error_message,
                    "details": s.error_details,
                    "skip": s.skip_reason,
                }
                for s in steps
            ),
            *({"details": entry.details, "actor": entry.actor} for entry in logs),
        ]
    return json.dumps(rows, default=str)


def test_no_secret_in_parameters_logs_rows_or_artifacts(org_id, sandbox) -> None:
    with session_scope() as session:
        (restaurant,) = import_restaurants(
            session, org_id, [restaurant_row(0, account_password=PASSWORD)]
        )
        stored = session.get(Restaurant, restaurant.id).account_password_encrypted  # type: ignore[union-attr]
        batch = batches.create_batch(
            session,
            organisation_id=org_id,
            name="secrets",
            restaurant_ids=[restaurant.id],
            settings=ALL_STEPS_ON,
        )
        job_id = batches.unfinished_jobs(session, batch.id)[0].id
    # one failing step too, so errors and retries are logged and stored
    sandbox.set_faults(
        [{"restaurant": str(restaurant.id), "step": "menu_import", "kind": "transient", "times": 1}]
    )
    state = run(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_completed(), state
    service_key = os.environ["REGBATCH_PLATFORM_SERVICE_KEY"]
    prefect_text = asyncio.run(prefect_records(state.state_details.flow_run_id))
    database_text = database_records(batch.id)
    for secret in (PASSWORD, service_key, stored):
        assert secret not in prefect_text
        assert secret not in database_text
    # and the password did reach the platform: the sandbox refuses an account without one
    accounts = [e for e in sandbox.ledger() if e["step"] == "account_registration"]
    assert [e["restaurant"] for e in accounts] == [str(restaurant.id)]
