"""The Python API drives the same operations as the CLI and the REST API."""

from __future__ import annotations

import csv
import io
import json
from typing import cast

import pytest

import regbatch.api.python as regbatch
from regbatch.db.engine import session_scope
from regbatch.errors import ConflictError, NotFoundError
from regbatch.views import BatchDetail
from tests.cli import cli, cli_json
from tests.factories import make_org, make_restaurants
from tests.flows.conftest import ALL_STEPS_ON

pytestmark = pytest.mark.flow


def test_create_run_retry_export_and_scoping(org_id, sandbox) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 3)
        other_org = make_org(session)
    batch_id = regbatch.create_batch(
        org_id,
        name="Python API",
        restaurant_ids=ids,
        settings=ALL_STEPS_ON,
        execution_mode="parallel",
        concurrency=2,
    )
    sandbox.set_faults([{"restaurant": str(ids[0]), "step": "item_tags", "kind": "permanent"}])
    detail = regbatch.run_batch(batch_id)
    assert (detail.status, detail.completed, detail.failed) == ("completed", 2, 1)
    assert regbatch.list_batches(org_id).items[0].id == batch_id
    with pytest.raises(NotFoundError):
        regbatch.get_batch(batch_id, organisation=other_org)
    with pytest.raises(ConflictError, match="'completed'"):
        regbatch.pause_batch(batch_id)
    rows = list(csv.DictReader(io.StringIO(regbatch.export_batch(batch_id, "csv"))))
    assert len(rows) == 3 and sorted(r["status"] for r in rows) == [
        "completed",
        "completed",
        "failed",
    ]
    exported = json.loads(regbatch.export_batch(batch_id, "json", organisation=org_id))
    assert "password" not in json.dumps(exported).lower()
    sandbox.clear_faults()
    retry = regbatch.run_batch(regbatch.retry_failed(batch_id))
    assert (retry.status, retry.completed) == ("completed", 1)


def test_register_one_restaurant(org_id, sandbox) -> None:
    with session_scope() as session:
        (restaurant_id,) = make_restaurants(session, org_id, 1)
    # run here (the default), so a BatchDetail rather than a StartResult
    detail = cast(
        BatchDetail, regbatch.register_restaurant(org_id, restaurant_id, settings=ALL_STEPS_ON)
    )
    assert detail.name.startswith("Single: ") and detail.status == "completed"


def test_watch_and_template_run_from_the_cli(org_id, sandbox) -> None:
    with session_scope() as session:
        make_restaurants(session, org_id, 2, city="Gisborne", lead_stage="hot")
    cli_json(
        "template",
        "create",
        "--org",
        str(org_id),
        "--name",
        "Gisborne hot",
        "--city",
        "Gisborne",
        "--stage",
        "hot",
        "--limit",
        "5",
    )
    ran = cli_json("template", "run", "Gisborne hot", "--org", str(org_id))
    assert ran["status"] == "completed" and ran["total"] == 2
    watched = cli("batch", "watch", ran["batch_id"])
    assert watched.returncode == 0 and ": completed - 2/2 finished (2 ok," in watched.stdout
    nothing_left = cli_json("template", "run", "Gisborne hot", "--org", str(org_id))
    assert nothing_left == {"batch_id": None}
