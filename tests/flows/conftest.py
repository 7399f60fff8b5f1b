"""Flow tests: PostgreSQL + the sandbox platform over real HTTP + Prefect really running."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.lease import Lease
from regbatch.sandbox.control import SandboxControl
from regbatch.sandbox.server import SandboxServer
from regbatch.settings import reset_settings
from tests.factories import make_org, make_restaurants

pytestmark = pytest.mark.flow

ALL_STEPS_ON = {"onboarding": {"create_user": True, "sync": True}}


@pytest.fixture(scope="session")
def sandbox_server(pg_url: str, prefect_server: str) -> Iterator[SandboxServer]:
    key = os.environ["REGBATCH_PLATFORM_SERVICE_KEY"]
    with SandboxServer(key, account_spacing_s=0, image_processing_s=0.05) as server:
        os.environ["REGBATCH_PLATFORM_URL"] = server.url
        reset_settings()
        yield server


@pytest.fixture()
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxControl]:
    """The sandbox's control API, reset before the test (state, faults, latency, ledger)."""
    control = SandboxControl(sandbox_server.url, os.environ["REGBATCH_PLATFORM_SERVICE_KEY"])
    control.reset()
    control.set_account_spacing(0)
    yield control
    control.clear_faults()


@pytest.fixture()
def org_id(pg_url: str) -> uuid.UUID:
    with session_scope() as session:
        return make_org(session)


def new_batch(
    org_id: uuid.UUID,
    count: int = 1,
    settings: dict[str, Any] | None = None,
    name: str = "flow test",
    **options: Any,
) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    """A draft batch of `count` fresh sample restaurants: (batch id, job ids, restaurant ids)."""
    with session_scope() as session:
        restaurant_ids = make_restaurants(session, org_id, count)
        batch = batches.create_batch(
            session,
            organisation_id=org_id,
            name=name,
            restaurant_ids=restaurant_ids,
            settings=settings if settings is not None else ALL_STEPS_ON,
            **options,
        )
        job_ids = [j.id for j in batches.unfinished_jobs(session, batch.id)]
    return batch.id, job_ids, restaurant_ids


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


TEST_RUNNER = "tests:runner"


def lease_of(job_id: uuid.UUID) -> Lease:
    """A lease on the job's batch held by the tests (taken once; a running batch's own runner
    would hold it), so a restaurant subflow can be run on its own."""
    from regbatch.db.lifecycle import begin_run
    from regbatch.db.models import Batch, Job

    with session_scope() as session:
        batch = session.get(Batch, session.get(Job, job_id).batch_id)  # type: ignore[union-attr]
        assert batch is not None
        if batch.status == "in_progress" and batch.lease_owner == TEST_RUNNER:
            return Lease(batch_id=batch.id, owner=TEST_RUNNER, token=batch.lease_token)
        start = begin_run(session, batch.id, TEST_RUNNER, lease_seconds=3600)
        assert start.lease is not None
        return start.lease


def ledger_for(control: SandboxControl, restaurant_id: uuid.UUID) -> list[dict[str, Any]]:
    return [e for e in control.ledger() if e["restaurant"] == str(restaurant_id)]
