"""Restaurants and jobs over REST: the filtered, paged list; the upsert by external_id or email
with created/updated/unchanged per row; a job and the retry of its failed steps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from regbatch.api.rest import create_app
from regbatch.db.engine import session_scope
from tests.factories import make_org, make_restaurants
from tests.integration.rest_support import bearer, finish_with_failure, new_draft, row_counts


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture()
def auth(org_id: uuid.UUID) -> dict[str, str]:
    return bearer(org_id)


def test_restaurants_are_filtered_searched_paged_and_counted(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        make_restaurants(session, org_id, 3, city="Auckland", lead_stage="hot")
        make_restaurants(session, org_id, 2, city="Wellington", restaurant_type="cafe")
    hot = client.get("/restaurants", headers=auth, params={"city": "auckland", "lead_stage": "hot"})
    assert hot.status_code == 200, hot.text
    assert hot.json()["total_count"] == 3 and {r["city"] for r in hot.json()["items"]} == {
        "Auckland"
    }
    cafes = client.get("/restaurants", headers=auth, params={"restaurant_type": "cafe"}).json()
    assert cafes["total_count"] == 2
    page = client.get("/restaurants", headers=auth, params={"limit": 2, "offset": 4}).json()
    assert len(page["items"]) == 1 and page["total_count"] == 5
    assert all("account_password" not in r for r in page["items"])
    found = client.get("/restaurants", headers=auth, params={"q": "WELLING"}).json()
    assert found["total_count"] == 2
    bad = client.get("/restaurants", headers=auth, params={"lead_stage": "boiling"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "lead_stage"
    one = hot.json()["items"][0]
    full = client.get(f"/restaurants/{one['id']}", headers=auth).json()
    assert {k: full[k] for k in one} == one and "account_password" not in full
    other = bearer(_org())
    assert client.get(f"/restaurants/{one['id']}", headers=other).status_code == 404
    assert client.get("/restaurants", headers=other).json()["total_count"] == 0


def _org() -> uuid.UUID:
    with session_scope() as session:
        return make_org(session)


def test_saving_restaurants_upserts_by_external_id_then_email(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    one = {"name": "Pho Real", "external_id": "crm-1", "city": "Auckland"}
    created = client.post("/restaurants", headers=auth, json=one)
    assert created.status_code == 201, created.text
    [outcome] = created.json()["items"]
    assert outcome["action"] == "created" and outcome["row"] == 1
    assert created.headers["Location"] == f"/restaurants/{outcome['id']}"

    rows = [
        {"name": "Pho Real", "external_id": "crm-1", "city": "Auckland"},
        {"name": "Pho Real II", "external_id": "crm-1b", "email": "b@example.com"},
        {"name": "Pho Real", "external_id": "crm-1", "city": "Hamilton"},
    ]
    dup = client.post("/restaurants", headers=auth, json=rows)
    assert dup.status_code == 422 and "list each restaurant once" in dup.text
    saved = client.post("/restaurants", headers=auth, json=rows[:2])
    assert saved.status_code == 201, saved.text
    assert [i["action"] for i in saved.json()["items"]] == ["unchanged", "created"]
    assert "Location" not in saved.headers
    moved = client.post("/restaurants", headers=auth, json=[rows[2]])
    assert moved.status_code == 200 and moved.json()["updated"] == 1
    assert moved.json()["items"][0]["id"] == outcome["id"]
    first = client.post("/restaurants", headers=auth, json={"name": "Mail", "email": "m@x.co"})
    by_email = client.post(
        "/restaurants", headers=auth, json={"name": "Renamed", "email": "M@x.co"}
    )
    assert by_email.status_code == 200, by_email.text
    assert by_email.json()["items"][0]["action"] == "updated"
    assert by_email.json()["items"][0]["id"] == first.json()["items"][0]["id"]

    before = row_counts()
    bad = client.post(
        "/restaurants",
        headers=auth,
        json=[{"name": "ok", "external_id": "crm-9"}, {"name": "x", "email": "not-an-email"}],
    )
    assert bad.status_code == 422, bad.text
    assert row_counts() == before
    listed = client.get("/restaurants", headers=auth, params={"q": "crm"}).json()
    assert listed["total_count"] == 0


def test_a_job_is_read_and_its_failed_steps_retried_alone(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    done, failed = finish_with_failure(batch)
    job = client.get(f"/jobs/{failed}", headers=auth)
    assert job.status_code == 200, job.text
    body = job.json()
    assert body["status"] == "failed" and body["current_step"] == 7
    assert all(s["result_data"] is None for s in body["steps"])
    with_results = client.get(f"/jobs/{failed}", headers=auth, params={"include": "results"})
    assert with_results.json()["steps"][4]["result_data"]["platform_restaurant_id"] == "pr_123"
    assert client.get(f"/jobs/{failed}", headers=bearer(_org())).status_code == 404

    not_failed = client.post(f"/jobs/{done}/retry", headers=auth)
    assert not_failed.status_code == 409 and "'completed'" in not_failed.text
    retry = client.post(f"/jobs/{failed}/retry", headers=auth, params={"auto_start": "false"})
    assert retry.status_code == 202, retry.text
    new_batch = retry.json()["new_batch_id"]
    assert retry.headers["Location"] == f"/registration-batches/{new_batch}"
    detail = client.get(retry.headers["Location"], headers=auth).json()
    assert detail["jobs_total"] == 1 and detail["retry_of_batch_id"] == str(batch)
    assert detail["jobs"][0]["retry_of_job_id"] == str(failed)
    again = client.post(f"/jobs/{failed}/retry", headers=auth, params={"auto_start": "false"})
    assert again.status_code == 202 and again.json()["already_existed"] is True
    assert again.json()["new_batch_id"] == new_batch


def test_each_failed_job_gets_its_own_retry_batch(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    from sqlalchemy import update

    from regbatch.db.models import Job, JobStep

    batch = new_draft(org_id, 2)
    first, second = finish_with_failure(batch)
    with session_scope() as session:  # the first restaurant failed too, at step 8
        session.execute(update(Job).where(Job.id == first).values(status="failed"))
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == first, JobStep.step_number == 8)
            .values(status="failed", error_message="payments refused")
        )
    one = client.post(f"/jobs/{first}/retry", headers=auth, params={"auto_start": "false"})
    other = client.post(f"/jobs/{second}/retry", headers=auth, params={"auto_start": "false"})
    assert one.status_code == other.status_code == 202, (one.text, other.text)
    assert one.json()["new_batch_id"] != other.json()["new_batch_id"]
    assert other.json()["already_existed"] is False
    again = client.post(f"/jobs/{first}/retry", headers=auth, params={"auto_start": "false"})
    assert again.json() == {**one.json(), "already_existed": True}
    retried = client.get(f"/jobs/{second}", headers=auth).json()
    assert retried["status"] == "failed"
