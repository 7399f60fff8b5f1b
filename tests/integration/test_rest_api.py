"""The REST API in-process (FastAPI's TestClient) on the session's PostgreSQL schema; starts go
to the session's Prefect server, where the batch deployment is registered but not served."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from regbatch.api.rest import create_app
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, Restaurant
from regbatch.services.api_keys import create_api_key, revoke_api_key
from tests.factories import make_org, make_restaurants
from tests.integration.rest_support import (
    batch_deployment,  # noqa: F401 - a fixture
    bearer,
    finish_with_failure,
    flow_run_state,
    new_draft,
    row_counts,
    set_status,
)
from tests.settings_env import settings_env

NOBODY = "00000000-0000-4000-8000-000000000000"
ROUTES = [
    ("POST", "/registration-batches"),
    ("GET", "/registration-batches"),
    ("GET", "/registration-batches/{batch}"),
    ("GET", "/registration-batches/{batch}/progress"),
    ("GET", "/registration-batches/{batch}/export"),
    ("POST", "/registration-batches/{batch}/start"),
    ("POST", "/registration-batches/{batch}/pause"),
    ("POST", "/registration-batches/{batch}/resume"),
    ("POST", "/registration-batches/{batch}/cancel"),
    ("POST", "/registration-batches/{batch}/retry-failed"),
    ("POST", "/registrations"),
    ("POST", "/templates"),
    ("GET", "/templates"),
    ("GET", "/templates/{template}"),
    ("DELETE", "/templates/{template}"),
    ("GET", "/templates/{template}/preview"),
    ("POST", "/templates/{template}/run"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks"),
    ("DELETE", "/webhooks/{webhook}"),
    ("GET", "/restaurants"),
    ("POST", "/restaurants"),
    ("GET", "/restaurants/{restaurant}"),
    ("GET", "/jobs/{job}"),
    ("POST", "/jobs/{job}/retry"),
]
OWNED_ROUTES = [(m, p) for m, p in ROUTES if "{" in p]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture()
def missing_deployment() -> Iterator[str]:
    """REGBATCH_BATCH_DEPLOYMENT names a deployment the Prefect server does not have."""
    name = f"registration-batch/missing-{uuid.uuid4().hex[:6]}"
    with settings_env({"REGBATCH_BATCH_DEPLOYMENT": name}):
        yield name


@pytest.fixture()
def auth(org_id: uuid.UUID) -> dict[str, str]:
    return bearer(org_id)


def _path(route: str, **ids: Any) -> str:
    return route.format(**{k: str(v) for k, v in ids.items()})


def _restaurant_of(job_id: uuid.UUID) -> uuid.UUID:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.restaurant_id


def _fields(response: Any) -> set[str]:
    return {problem["field"] for problem in response.json()["errors"]}


# --- authentication and isolation --------------------------------------------------------------


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_every_route_refuses_a_missing_a_bad_or_a_revoked_key(
    client: TestClient, org_id: uuid.UUID, method: str, route: str
) -> None:
    path = _path(route, batch=NOBODY, template="t", webhook=NOBODY, restaurant=NOBODY, job=NOBODY)
    key = create_api_key(org_id, "soon revoked")
    revoke_api_key(org_id, key.id)
    for headers in (
        {},
        {"Authorization": "Bearer rk_not-a-real-key"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Basic {key.api_key}"},
        {"Authorization": f"Bearer {key.api_key}"},
    ):
        response = client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (headers, response.text)
        assert "API key" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "route"), OWNED_ROUTES)
def test_another_organisations_objects_are_not_found_on_every_route(
    client: TestClient, auth: dict[str, str], method: str, route: str
) -> None:
    with session_scope() as session:
        other = make_org(session)
    other_auth = bearer(other)
    batch = new_draft(other)
    template = client.post(
        "/templates", headers=other_auth, json={"name": f"t-{uuid.uuid4().hex[:6]}"}
    ).json()
    made = client.post("/webhooks", headers=other_auth, json={"url": "https://example.com/hook"})
    webhook = made.json()
    assert made.status_code == 201 and made.headers["Location"] == f"/webhooks/{webhook['id']}"
    _, failed_job = finish_with_failure(batch)
    theirs = {"restaurant": _restaurant_of(failed_job), "job": failed_job}
    before = row_counts()
    for ids in (
        {"batch": batch, "template": template["id"], "webhook": webhook["id"], **theirs},
        {"batch": batch, "template": template["name"], "webhook": webhook["id"], **theirs},
        {
            "batch": NOBODY,
            "template": NOBODY,
            "webhook": NOBODY,
            "restaurant": NOBODY,
            "job": NOBODY,
        },
    ):
        response = client.request(method, _path(route, **ids), headers=auth)
        assert response.status_code == 404, response.text
        assert "does not exist" in response.json()["detail"]
    assert row_counts() == before
    assert client.get(f"/registration-batches/{batch}", headers=other_auth).status_code == 200


def test_lists_show_only_the_callers_objects(client: TestClient, auth: dict[str, str]) -> None:
    with session_scope() as session:
        other = make_org(session)
    new_draft(other)
    other_auth = bearer(other)
    client.post("/templates", headers=other_auth, json={"name": "theirs"})
    client.post("/webhooks", headers=other_auth, json={"url": "https://example.com/h"})
    assert client.get("/registration-batches", headers=auth).json()["items"] == []
    assert client.get("/templates", headers=auth).json() == []
    assert client.get("/webhooks", headers=auth).json() == []


# --- batches: create, list, show --------------------------------------------------------------


def test_create_then_show_and_list_a_batch(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        ids = [str(i) for i in make_restaurants(session, org_id, 3)]
    response = client.post(
        "/registration-batches",
        headers=auth,
        json={
            "name": "Auckland Q4",
            "restaurant_ids": ids,
            "common_config": {"payment": {"stripe_connect": False}},
            "execution_mode": "parallel",
            "concurrency": 2,
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["jobs_count"] == 3 and created["status"] == "draft"
    assert created["flow_run_id"] is None
    assert response.headers["Location"] == f"/registration-batches/{created['batch_id']}"
    detail = client.get(response.headers["Location"], headers=auth).json()
    assert detail["name"] == "Auckland Q4" and detail["status"] == "draft"
    assert detail["execution_mode"] == "parallel" and detail["concurrency"] == 2
    assert detail["settings"] == {"payment": {"stripe_connect": False}}
    assert detail["created_by"].startswith("api:tests (rk_")
    assert [job["restaurant_id"] for job in detail["jobs"]] == ids
    assert all(len(job["steps"]) == 12 for job in detail["jobs"])
    page = client.get("/registration-batches", headers=auth).json()
    assert page["next_cursor"] is None
    [item] = page["items"]
    assert {k: item[k] for k in ("id", "name", "status", "total", "completed", "failed")} == {
        "id": created["batch_id"],
        "name": "Auckland Q4",
        "status": "draft",
        "total": 3,
        "completed": 0,
        "failed": 0,
    }


def test_a_batch_name_defaults_to_the_date(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
    created = client.post(
        "/registration-batches", headers=auth, json={"restaurant_ids": [str(rid)]}
    ).json()
    detail = client.get(f"/registration-batches/{created['batch_id']}", headers=auth).json()
    assert detail["name"].startswith("Batch 20")


def test_invalid_request_lists_every_invalid_field_and_writes_nothing(
    client: TestClient, auth: dict[str, str]
) -> None:
    before = row_counts()
    response = client.post(
        "/registration-batches",
        headers=auth,
        json={
            "name": "x" * 201,
            "restaurant_ids": ["not-a-uuid", NOBODY, 7],
            "common_config": "nope",
            "execution_mode": "warp",
            "concurrency": 0,
            "breaker_threshold": 2,
            "unknown": True,
        },
    )
    assert response.status_code == 422
    body = response.json()
    assert _fields(response) == {
        "name",
        "restaurant_ids.0",
        "restaurant_ids.2",
        "common_config",
        "execution_mode",
        "concurrency",
        "breaker_threshold",
        "unknown",
    }
    assert body["detail"].startswith("request is invalid")
    assert row_counts() == before


def test_a_batch_the_rules_reject_lists_every_problem_and_writes_nothing(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
    before = row_counts()
    response = client.post(
        "/registration-batches",
        headers=auth,
        json={
            "name": "Auckland Q4",
            "restaurant_ids": [str(rid), str(rid), NOBODY],
            "common_config": {"payment": {"provider": "barter"}, "colour": "red"},
            "execution_mode": "sequential",
            "concurrency": 5,
        },
    )
    assert response.status_code == 422, response.text
    problems = response.json()["errors"]
    fields = {p["field"] for p in problems}
    assert {"restaurant_ids", "concurrency", "common_config.colour"} <= fields
    assert "common_config.payment.provider" in fields
    assert {"field": "restaurant_ids", "subject": NOBODY} in [
        {"field": p["field"], "subject": p["subject"]} for p in problems
    ]
    assert any("listed twice" in p["message"] for p in problems)
    assert row_counts() == before


def test_nul_characters_are_refused_not_crashing_the_database(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
    before = row_counts()
    response = client.post(
        "/registration-batches",
        headers=auth,
        json={
            "name": "a\x00b",
            "restaurant_ids": [str(rid)],
            "common_config": {"account": {"email": "x\x00@y"}},
        },
    )
    assert response.status_code == 422
    assert _fields(response) == {"name", "common_config"}
    assert "account.email contains a NUL character" in response.text
    deep = client.post(
        "/registration-batches",
        headers={**auth, "Content-Type": "application/json"},
        content=b'{"restaurant_ids": ["%s"], "common_config": {"a": [1, {"b\\u0000": 2}], '
        b'"c": [0.5, NaN]}}' % str(rid).encode(),
    )
    assert deep.status_code == 422 and _fields(deep) == {"common_config"}, deep.text
    assert "a key in a.1 has a NUL character" in deep.text or "c.1 is nan" in deep.text
    assert client.get("/templates/a%00b", headers=auth).status_code == 404
    assert row_counts() == before


def test_list_filters_pages_and_rejects_bad_filters(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    first, second, third = (new_draft(org_id, 1) for _ in range(3))
    set_status(third, "cancelled")
    page = client.get("/registration-batches", headers=auth, params={"limit": 2}).json()
    assert [b["id"] for b in page["items"]] == [str(third), str(second)]
    rest = client.get(
        "/registration-batches", headers=auth, params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [b["id"] for b in rest["items"]] == [str(first)] and rest["next_cursor"] is None
    drafts = client.get(
        "/registration-batches", headers=auth, params={"status": ["draft", "pending"]}
    ).json()
    assert {b["id"] for b in drafts["items"]} == {str(first), str(second)}
    naive_past = client.get(
        "/registration-batches", headers=auth, params={"created_after": "2000-01-01T00:00:00"}
    )
    assert len(naive_past.json()["items"]) == 3
    future = client.get(
        "/registration-batches", headers=auth, params={"created_after": "2999-01-01T00:00:00Z"}
    )
    assert future.json()["items"] == []
    bad = client.get(
        "/registration-batches",
        headers=auth,
        params={"status": "sleeping", "limit": 0, "created_after": "yesterday"},
    )
    assert bad.status_code == 422 and _fields(bad) == {"limit", "created_after"}
    unknown_status = client.get(
        "/registration-batches", headers=auth, params={"status": "sleeping"}
    )
    assert unknown_status.status_code == 422 and _fields(unknown_status) == {"status"}
    assert "'sleeping' is not a batch status; use one of draft, pending" in unknown_status.text
    bad_cursor = client.get("/registration-batches", headers=auth, params={"cursor": "zzz"})
    assert bad_cursor.status_code == 422 and _fields(bad_cursor) == {"cursor"}
    assert client.get("/registration-batches/not-a-uuid", headers=auth).status_code == 422


# --- progress and export ----------------------------------------------------------------------


def test_progress_of_a_new_and_of_a_finished_batch(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    fresh = client.get(f"/registration-batches/{batch}/progress", headers=auth).json()
    assert fresh["total"] == 2 and fresh["finished"] == 0 and fresh["percent"] == 0
    assert fresh["jobs"]["pending"] == 2 and fresh["jobs"]["completed"] == 0
    assert [s["step_number"] for s in fresh["steps"]] == list(range(1, 13))
    assert all(s["counts"]["pending"] == 2 for s in fresh["steps"])
    assert fresh["eta_seconds"] is None and fresh["elapsed_seconds"] is None
    finish_with_failure(batch)
    done = client.get(f"/registration-batches/{batch}/progress", headers=auth).json()
    assert done["finished"] == 2 and done["percent"] == 100.0
    assert done["jobs"]["completed"] == 1 and done["jobs"]["failed"] == 1
    step7 = done["steps"][6]["counts"]
    assert {k: n for k, n in step7.items() if n} == {"completed": 1, "failed": 1}
    assert done["eta_seconds"] == 0 and done["eta_method"] == "finished"
    assert done["elapsed_seconds"] == pytest.approx(100, abs=1)


def test_export_csv_and_json_with_platform_ids_and_no_secrets(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    finish_with_failure(batch)
    response = client.get(f"/registration-batches/{batch}/export", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f"batch-{batch}.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["status"] for r in rows] == ["completed", "failed"]
    assert rows[0]["platform_restaurant_id"] == "pr_123"
    assert rows[0]["ordering_url"] == "https://x.example/order"
    assert rows[0]["stripe_connect_url"] == "https://stripe/c"
    assert rows[0]["subdomain"] == "'=cmd|calc"  # a spreadsheet must not run it
    assert rows[1]["failing_step"] == "07-services_configuration"
    assert rows[1]["error"] == "services refused: no pickup"
    assert rows[1]["attempts"] == "15" and rows[1]["duration_seconds"] == "90.0"
    as_json = client.get(
        f"/registration-batches/{batch}/export", headers=auth, params={"format": "json"}
    )
    assert as_json.headers["content-type"] == "application/json"
    document = as_json.json()
    assert document["batch"]["id"] == str(batch) and document["batch"]["status"] == "failed"
    assert "jobs" not in document["batch"]
    assert [r["restaurant_name"] for r in document["rows"]] == [r["restaurant_name"] for r in rows]
    assert document["rows"][0]["subdomain"] == "=cmd|calc"
    for text in (response.text, as_json.text):
        assert "password" not in text.lower() and "secret" not in text.lower()
    bad = client.get(
        f"/registration-batches/{batch}/export", headers=auth, params={"format": "xml"}
    )
    assert bad.status_code == 422 and _fields(bad) == {"format"}


# --- actions that need no Prefect -------------------------------------------------------------


def test_actions_the_status_does_not_allow_are_conflicts_naming_the_status(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 1)
    for action in ("pause", "resume", "retry-failed"):
        response = client.post(f"/registration-batches/{batch}/{action}", headers=auth)
        assert response.status_code == 409, (action, response.text)
        assert "'draft'" in response.json()["detail"]
    before = row_counts()
    cancelled = client.post(f"/registration-batches/{batch}/cancel", headers=auth)
    assert cancelled.status_code == 202
    assert cancelled.headers["Location"] == f"/registration-batches/{batch}"
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["cancelled_at"] is not None
    # the batch's cancellation and its one job's
    assert row_counts()["batch_operation_logs"] == before["batch_operation_logs"] + 2
    for action in ("cancel", "start", "pause", "resume"):
        response = client.post(f"/registration-batches/{batch}/{action}", headers=auth)
        assert response.status_code == 409, (action, response.text)
        assert "'cancelled'" in response.json()["detail"]


def test_pause_then_resume_a_running_batch_withdraws_the_request(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 1)
    set_status(batch, "in_progress")
    paused = client.post(f"/registration-batches/{batch}/pause", headers=auth)
    assert paused.status_code == 202
    assert paused.headers["Location"] == f"/registration-batches/{batch}"
    assert paused.json() == {
        "batch_id": str(batch),
        "status": "in_progress",
        "requested_action": "pause",
        "paused_at": None,
    }
    resumed = client.post(f"/registration-batches/{batch}/resume", headers=auth).json()
    assert resumed["status"] == "in_progress" and resumed["requested_action"] is None
    cancel = client.post(f"/registration-batches/{batch}/cancel", headers=auth).json()
    assert cancel["status"] == "in_progress" and cancel["requested_action"] == "cancel"


def test_retry_failed_creates_the_linked_batch(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    _, failed_job = finish_with_failure(batch)
    response = client.post(f"/registration-batches/{batch}/retry-failed", headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "draft" and body["flow_run_id"] is None
    retry = client.get(f"/registration-batches/{body['new_batch_id']}", headers=auth).json()
    assert retry["retry_of_batch_id"] == str(batch) and retry["total"] == 1
    assert retry["jobs"][0]["retry_of_job_id"] == str(failed_job)


# --- actions that submit to Prefect -----------------------------------------------------------


@pytest.mark.usefixtures("batch_deployment")
def test_start_submits_a_flow_run_and_leaves_the_batch_pending(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    response = client.post(f"/registration-batches/{batch}/start", headers=auth)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/registration-batches/{batch}"
    body = response.json()
    assert body["status"] == "pending" and body["started_at"]
    assert body["first_job_id"] is not None
    state, parameters = flow_run_state(body["flow_run_id"])
    assert state == "SCHEDULED"
    assert parameters["run"]["batch_id"] == str(batch)
    assert parameters["run"]["started_by"].startswith("api:tests")
    detail = client.get(f"/registration-batches/{batch}", headers=auth).json()
    assert detail["status"] == "pending"
    again = client.post(f"/registration-batches/{batch}/start", headers=auth)
    assert again.status_code == 409 and "'pending'" in again.json()["detail"]


@pytest.mark.usefixtures("batch_deployment")
def test_create_with_auto_start(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        ids = [str(i) for i in make_restaurants(session, org_id, 2)]
    response = client.post(
        "/registration-batches",
        headers=auth,
        json={"name": "now", "restaurant_ids": ids, "auto_start": True},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["jobs_count"] == 2
    assert flow_run_state(body["flow_run_id"])[0] == "SCHEDULED"


@pytest.mark.usefixtures("batch_deployment")
def test_resume_submits_a_paused_batch_again(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 1)
    set_status(batch, "paused", pause_reason="breaker")
    response = client.post(f"/registration-batches/{batch}/resume", headers=auth)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/registration-batches/{batch}"
    body = response.json()
    assert body["status"] == "pending" and body["flow_run_id"]


@pytest.mark.usefixtures("batch_deployment")
def test_retry_failed_with_auto_start(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    finish_with_failure(batch)
    response = client.post(
        f"/registration-batches/{batch}/retry-failed",
        headers=auth,
        params={"auto_start": "true"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["flow_run_id"]
    assert flow_run_state(body["flow_run_id"])[1]["run"]["batch_id"] == body["new_batch_id"]


@pytest.mark.usefixtures("batch_deployment")
def test_register_one_restaurant(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
        name = session.get(Restaurant, rid).name  # type: ignore[union-attr]
    response = client.post(
        "/registrations",
        headers=auth,
        json={"restaurant_id": str(rid), "config": {"services": {"delivery": True}}},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["jobs_count"] == 1 and body["status"] == "pending" and body["flow_run_id"]
    detail = client.get(f"/registration-batches/{body['batch_id']}", headers=auth).json()
    assert detail["name"] == f"Single: {name}"


def test_register_without_start_and_its_errors(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
    draft = client.post(
        "/registrations", headers=auth, json={"restaurant_id": str(rid), "auto_start": False}
    )
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    assert draft.headers["Location"] == f"/registration-batches/{draft.json()['batch_id']}"
    before = row_counts()
    unknown = client.post(
        "/registrations",
        headers=auth,
        json={"restaurant_id": NOBODY, "config": {"payment": {"currency": "dollars"}}},
    )
    assert unknown.status_code == 422, unknown.text
    assert _fields(unknown) == {"restaurant_id", "config.payment.currency"}
    busy = client.post("/registrations", headers=auth, json={"restaurant_id": str(rid)})
    assert busy.status_code == 422 and "unfinished batch" in busy.text
    assert row_counts() == before


def test_start_without_the_deployment_is_503_and_the_batch_stays_a_draft(
    client: TestClient,
    org_id: uuid.UUID,
    auth: dict[str, str],
    prefect_server: str,
    missing_deployment: str,
) -> None:
    batch = new_draft(org_id, 1)
    response = client.post(f"/registration-batches/{batch}/start", headers=auth)
    assert response.status_code == 503, response.text
    assert missing_deployment in response.json()["detail"]
    with session_scope() as session:
        assert session.scalar(select(Batch.status).where(Batch.id == batch)) == "draft"
    with session_scope() as session:
        ids = [str(i) for i in make_restaurants(session, org_id, 1)]
    created = client.post(
        "/registration-batches",
        headers=auth,
        json={"restaurant_ids": ids, "auto_start": True},
    )
    assert created.status_code == 503
    body = created.json()
    assert "created as a draft but not started" in body["detail"]
    detail = client.get(f"/registration-batches/{body['batch_id']}", headers=auth).json()
    assert detail["status"] == "draft"
    assert client.post(f"/registration-batches/{batch}/resume", headers=auth).status_code == 409


# --- templates and webhooks -------------------------------------------------------------------


def test_templates_round_trip(client: TestClient, org_id: uuid.UUID, auth: dict[str, str]) -> None:
    with session_scope() as session:
        make_restaurants(session, org_id, 2, city="Auckland", lead_stage="hot")
    created = client.post(
        "/templates",
        headers=auth,
        json={"name": "Auckland hot", "city": "auckland", "lead_stage": "hot", "limit": 5},
    )
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/templates/Auckland%20hot"
    template = created.json()
    assert template["limit"] == 5 and template["concurrency"] == 1
    assert [t["id"] for t in client.get("/templates", headers=auth).json()] == [template["id"]]
    by_name = client.get("/templates/Auckland hot", headers=auth).json()
    assert by_name == client.get(f"/templates/{template['id']}", headers=auth).json()
    preview = client.get(f"/templates/{template['id']}/preview", headers=auth).json()
    assert len(preview) == 2 and {r["city"] for r in preview} == {"Auckland"}
    run = client.post(
        f"/templates/{template['id']}/run", headers=auth, params={"auto_start": "false"}
    )
    assert run.status_code == 201, run.text
    assert run.json()["jobs_count"] == 2 and run.json()["status"] == "draft"
    assert run.headers["Location"] == f"/registration-batches/{run.json()['batch_id']}"
    nothing = client.post(
        f"/templates/{template['id']}/run", headers=auth, params={"auto_start": "false"}
    )
    assert nothing.status_code == 200 and nothing.json()["batch_id"] is None
    deleted = client.delete(f"/templates/{template['id']}", headers=auth)
    assert deleted.status_code == 200 and deleted.json()["name"] == "Auckland hot"
    assert client.get(f"/templates/{template['id']}", headers=auth).status_code == 404


@pytest.mark.usefixtures("batch_deployment")
def test_a_template_run_starts_its_batch(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        make_restaurants(session, org_id, 1, city="Wellington")
    client.post("/templates", headers=auth, json={"name": "wgtn", "city": "Wellington"})
    run = client.post("/templates/wgtn/run", headers=auth)
    assert run.status_code == 201, run.text
    assert run.json()["status"] == "pending" and run.json()["flow_run_id"]


def test_invalid_templates_list_every_field_and_write_nothing(
    client: TestClient, auth: dict[str, str]
) -> None:
    client.post("/templates", headers=auth, json={"name": "taken"})
    before = row_counts()
    response = client.post(
        "/templates",
        headers=auth,
        json={"name": "", "lead_stage": "boiling", "limit": 0, "min_icp_score": 11},
    )
    assert response.status_code == 422
    assert _fields(response) == {"name", "lead_stage", "limit", "min_icp_score"}
    rules = client.post(
        "/templates",
        headers=auth,
        json={
            "name": "taken",
            "registration_status": "registered",
            "concurrency": 3,
            "settings": {"nope": 1},
        },
    )
    assert rules.status_code == 422, rules.text
    assert _fields(rules) == {"name", "registration_status", "concurrency", "settings.nope"}
    assert row_counts() == before


def test_webhooks_show_the_secret_once(client: TestClient, auth: dict[str, str]) -> None:
    created = client.post(
        "/webhooks",
        headers=auth,
        json={"url": "https://example.com/hooks?token=t0p", "events": ["batch.completed"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"] and body["events"] == ["batch.completed"]
    listed = client.get("/webhooks", headers=auth)
    assert [(w["id"], w["url"]) for w in listed.json()] == [
        (body["id"], "https://example.com/hooks")
    ]
    assert body["secret"] not in listed.text and "secret" not in listed.json()[0]
    assert "t0p" not in listed.text
    before = row_counts()
    with_credentials = client.post(
        "/webhooks", headers=auth, json={"url": "https://u:pa55w0rd@example.com/hooks"}
    )
    assert with_credentials.status_code == 422 and _fields(with_credentials) == {"url"}
    assert "credentials" in with_credentials.text and "pa55w0rd" not in with_credentials.text
    metadata = client.post("/webhooks", headers=auth, json={"url": "http://0xa9fea9fe/latest"})
    assert metadata.status_code == 422 and _fields(metadata) == {"url"}
    assert "is 169.254.169.254, a link-local address" in metadata.text
    bad = client.post(
        "/webhooks", headers=auth, json={"url": "ftp://example.com", "events": ["nope"]}
    )
    assert bad.status_code == 422 and _fields(bad) == {"events.0"}
    bad_url = client.post("/webhooks", headers=auth, json={"url": "ftp://example.com"})
    assert bad_url.status_code == 422 and _fields(bad_url) == {"url"}
    assert row_counts() == before
    assert client.delete(f"/webhooks/{body['id']}", headers=auth).status_code == 204
    assert client.delete(f"/webhooks/{body['id']}", headers=auth).status_code == 404


# --- the contract -----------------------------------------------------------------------------


def test_openapi_documents_every_route_with_its_responses(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    expected = {(m, p.replace("{batch}", "{batch_id}")) for m, p in ROUTES}
    expected = {
        (
            m,
            p.replace("{template}", "{ref}")
            .replace("{webhook}", "{webhook_id}")
            .replace("{restaurant}", "{restaurant_id}")
            .replace("{job}", "{job_id}"),
        )
        for m, p in expected
    }
    assert set(operations) == expected
    for key, operation in operations.items():
        success = next(c for c in operation["responses"] if c.startswith("2"))
        if success != "204":
            content = operation["responses"][success]["content"]
            assert any("schema" in c and c["schema"] for c in content.values()), key
        assert {"401", "422"} <= set(operation["responses"]), key
        assert operation["security"] == [{"ApiKey": []}], key
    assert client.get("/docs").status_code == 200


def test_no_key_reaches_a_response_or_the_log(
    client: TestClient, org_id: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    key = create_api_key(org_id, "logged?")
    headers = {"Authorization": f"Bearer {key.api_key}"}
    batch = new_draft(org_id, 1)
    with caplog.at_level(logging.DEBUG):
        texts = [
            client.get(f"/registration-batches/{batch}", headers=headers).text,
            client.get("/registration-batches", headers=headers).text,
            client.post(f"/registration-batches/{batch}/cancel", headers=headers).text,
            client.get(f"/registration-batches/{batch}/export", headers=headers).text,
        ]
    assert all(key.api_key not in text for text in texts)
    assert key.api_key not in caplog.text


def test_every_error_carries_a_stable_code(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 1)
    set_status(batch, "completed")
    answers = {
        "unauthorized": client.get("/registration-batches"),
        "not_found": client.get(f"/registration-batches/{NOBODY}", headers=auth),
        "validation_error": client.get("/registration-batches?limit=0", headers=auth),
        "malformed_json": client.post(
            "/templates", headers={**auth, "Content-Type": "application/json"}, content=b"[1,"
        ),
        "invalid_input": client.post(
            "/registration-batches", headers=auth, json={"restaurant_ids": [NOBODY]}
        ),
        "conflict": client.post(f"/registration-batches/{batch}/pause", headers=auth),
        "method_not_allowed": client.options("/webhooks", headers=auth),
    }
    for code, response in answers.items():
        assert response.json()["code"] == code, (code, response.status_code, response.text)
        assert response.json()["detail"]
    assert answers["malformed_json"].status_code == 400
    assert answers["method_not_allowed"].headers["Allow"] == "GET, POST"
    unknown = client.get("/no-such-route", headers=auth)
    assert unknown.status_code == 404 and unknown.json() == {
        "detail": "no such path: /no-such-route; the API's paths are listed at /docs",
        "code": "not_found",
    }


def test_the_schema_and_the_api_agree_on_strict_values(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
    before = row_counts()
    loose = client.post(
        "/registration-batches",
        headers=auth,
        json={
            "name": " ",
            "restaurant_ids": [str(rid)],
            "breaker_threshold": False,
            "breaker_min_finished": True,
            "concurrency": "2",
            "auto_start": "yes",
        },
    )
    assert loose.status_code == 422, loose.text
    assert _fields(loose) == {
        "name",
        "breaker_threshold",
        "breaker_min_finished",
        "concurrency",
        "auto_start",
    }
    empty = client.post("/templates", headers=auth, json={"name": "", "breaker_threshold": True})
    assert empty.status_code == 422 and _fields(empty) == {"name", "breaker_threshold"}
    no_restaurants = client.post("/registration-batches", headers=auth, json={"restaurant_ids": []})
    assert _fields(no_restaurants) == {"restaurant_ids"}
    assert row_counts() == before

    for moment in ("0.5", "1700000000", "yesterday", "2026-11-29T25"):
        bad = client.get("/registration-batches", headers=auth, params={"created_after": moment})
        assert bad.status_code == 422 and _fields(bad) == {"created_after"}, (moment, bad.text)
        assert "is not an ISO 8601 date or date-time" in bad.text
    for moment in ("2026-11-29", "2026-11-29T09:00", "2026-11-29T09:00:00+13:00"):
        good = client.get("/registration-batches", headers=auth, params={"created_after": moment})
        assert good.status_code == 200, (moment, good.text)
    typo = client.get("/registration-batches", headers=auth, params={"stauts": "paused"})
    assert typo.status_code == 400 and _fields(typo) == {"stauts"}, typo.text
    assert typo.json()["code"] == "unknown_query_parameter"
    assert "it takes: created_after, cursor, include, limit, offset, order, q, sort, status" in (
        typo.text
    )

    schema = client.get("/openapi.json").json()["components"]["schemas"]
    name = schema["CreateTemplateRequest"]["properties"]["name"]
    assert (name["minLength"], name["pattern"]) == (1, r"\S")
    assert schema["CreateBatchRequest"]["properties"]["restaurant_ids"]["minItems"] == 1
