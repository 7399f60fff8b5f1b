"""The CLI's run commands: `register` prints each step as it finishes; `batch retry-failed`
and `batch run` name their ids as the REST API does and exit 0 only on completion."""

from __future__ import annotations

import json

import pytest

from regbatch.db.engine import session_scope
from tests.cli import cli
from tests.factories import make_restaurants
from tests.flows.conftest import ALL_STEPS_ON, new_batch

pytestmark = pytest.mark.flow


def test_register_runs_a_batch_of_one_and_prints_each_step(org_id, sandbox, tmp_path) -> None:
    with session_scope() as session:
        (restaurant_id,) = make_restaurants(session, org_id, 1)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(ALL_STEPS_ON))
    result = cli("register", str(restaurant_id), "--org", str(org_id), "--settings", str(settings))
    lines = result.stdout.splitlines()
    assert any(line.startswith("✓ 01-account_registration") for line in lines)
    assert any(line.startswith("✓ 12-item_tags") for line in lines)
    assert any(
        ": completed - 1/1 finished (1 ok, 0 failed" in line and line.startswith("Single: ")
        for line in lines
    )


def test_failed_batch_exits_1_and_retry_failed_names_the_new_batch(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 2)
    sandbox.set_faults(
        [
            {
                "restaurant": str(restaurant_ids[0]),
                "step": "payment_configuration",
                "kind": "permanent",
            }
        ]
    )
    first = cli("batch", "run", str(batch_id), "--json", check=False)
    assert first.returncode == 0  # 1 of 2 failed: the batch still completed (seed's rule)
    assert json.loads(first.stdout)["failed"] == 1
    sandbox.clear_faults()
    retried = json.loads(cli("batch", "retry-failed", str(batch_id), "--json").stdout)
    assert retried["new_batch_id"] == retried["id"] and retried["status"] == "completed"
    assert retried["retry_of_batch_id"] == str(batch_id)


def test_a_failed_batch_exits_non_zero(org_id, sandbox) -> None:
    batch_id, _, restaurant_ids = new_batch(org_id, 1)
    sandbox.set_faults(
        [
            {
                "restaurant": str(restaurant_ids[0]),
                "step": "account_registration",
                "kind": "permanent",
            }
        ]
    )
    result = cli("batch", "run", str(batch_id), check=False)
    assert result.returncode == 1
    assert ": failed - 1/1 finished (0 ok, 1 failed" in result.stdout
    assert f"regbatch batch retry-failed {batch_id}" in result.stdout
