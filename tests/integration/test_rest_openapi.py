"""The OpenAPI document is what a client generator needs: stable operationIds, a description
and a valid example on every operation, status enums in the answers; a client generated from it
with openapi-python-client lists, creates and reads batches."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from regbatch.api.rest import create_app
from regbatch.db.engine import session_scope
from tests.factories import make_restaurants
from tests.integration.rest_support import bearer


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_operation_has_an_id_a_description_and_a_valid_example(
    document: dict[str, Any],
) -> None:
    ids = []
    for method, path, operation in _operations(document):
        where = f"{method} {path}"
        ids.append(operation["operationId"])
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"]), where
        assert operation.get("summary") and operation.get("description"), where
        success = next(c for c in operation["responses"] if c.startswith("2"))
        if success == "204":
            continue
        media = operation["responses"][success]["content"]
        json_media = media.get("application/json") or next(iter(media.values()))
        assert "example" in json_media, where
        schema = {**json_media["schema"], "components": document["components"]}
        jsonschema.validate(json_media["example"], schema)
    assert len(ids) == len(set(ids))
    assert {"list_batches", "create_batch", "get_batch", "get_job", "retry_job"} <= set(ids)


def test_statuses_in_answers_are_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        for field, spec in schema.get("properties", {}).items():
            if field not in ("status", "action", "execution_mode", "requested_action"):
                continue
            options = spec.get("anyOf", [spec])
            refs = [o["$ref"].rsplit("/", 1)[1] for o in options if "$ref" in o]
            enums = [o for o in options if "enum" in o] + [schemas[r] for r in refs]
            assert enums and all("enum" in e for e in enums), (name, field, spec)


def test_a_generated_client_lists_creates_and_reads_batches(
    tmp_path: Path, document: dict[str, Any], org_id: uuid.UUID
) -> None:
    spec = tmp_path / "openapi.json"
    import json

    spec.write_text(json.dumps(document))
    package = tmp_path / "regbatch_client"
    bin_dir = str(Path(sys.executable).parent)
    subprocess.run(
        [
            os.path.join(bin_dir, "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(package),
            "--meta",
            "none",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        timeout=300,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        generated = importlib.import_module("regbatch_client")
        create_batch = importlib.import_module("regbatch_client.api.batches.create_batch")
        list_batches = importlib.import_module("regbatch_client.api.batches.list_batches")
        get_batch = importlib.import_module("regbatch_client.api.batches.get_batch")
        models = importlib.import_module("regbatch_client.models")
        with session_scope() as session:
            ids = make_restaurants(session, org_id, 2)
        with TestClient(create_app(), headers=bearer(org_id)) as http:
            client = generated.AuthenticatedClient(base_url="http://testserver", token="unused")
            client.set_httpx_client(http)
            created = create_batch.sync(
                client=client,
                body=models.CreateBatchRequest(restaurant_ids=ids, name="generated client"),
            )
            assert created.status == models.BatchStatus.DRAFT and created.jobs_count == 2
            listed = list_batches.sync(client=client, status=["draft"], q="generated")
            assert [item.id for item in listed.items] == [created.batch_id]
            assert listed.total_count == 1
            detail = get_batch.sync(created.batch_id, client=client, limit=1)
            assert detail.name == "generated client" and detail.jobs_total == 2
            assert len(detail.jobs) == 1 and detail.next_cursor
            assert detail.jobs[0].status == models.JobStatus.PENDING
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("regbatch_client")]:
            del sys.modules[name]
