"""Fixtures of the fault harness: the uninterrupted reference run, and a place for logs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from regbatch.db.engine import session_scope
from regbatch.sandbox.control import SandboxControl
from regbatch.sandbox.server import SandboxServer
from tests.factories import make_org
from tests.faults import harness
from tests.flows.conftest import org_id, sandbox, sandbox_server  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.flow, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults"


@pytest.fixture()
def logs(request: pytest.FixtureRequest) -> Path:
    """Where this test's runners write their output (kept as a test artifact)."""
    path = ARTIFACTS / request.node.name.replace("/", "_")
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.log"):
        old.unlink()
    return path


@pytest.fixture(scope="session")
def reference(sandbox_server: SandboxServer) -> harness.Signature:  # noqa: F811
    """How the harness's batch ends when nothing interrupts it (same plan, same limits)."""
    control = SandboxControl(sandbox_server.url, os.environ["REGBATCH_PLATFORM_SERVICE_KEY"])
    control.reset()
    with session_scope() as session:
        organisation: uuid.UUID = make_org(session)
    scenario = harness.new_scenario(organisation, control, ARTIFACTS / "reference")
    runner = scenario.run_batch()
    assert runner.wait(timeout=300) == 0, scenario.output(runner)
    signature = harness.signature(scenario.batch_id)
    harness.check_common(scenario, control)
    statuses = [job_status for job_status, _ in signature.values()]
    failed = sum(position < harness.SIZE for position in harness.PLAN) - 1  # position 5 recovers
    assert statuses.count("failed") == failed, signature
    control.reset()
    return signature


@pytest.fixture()
def scenario_org(org_id: uuid.UUID) -> Iterator[uuid.UUID]:  # noqa: F811
    yield org_id
