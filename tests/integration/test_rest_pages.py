"""The REST API's lists and pages: the batch list's filters, search, order, cursor and total,
each batch's current step and step count, and a batch's jobs paged without their results."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from regbatch.api.rest import create_app
from regbatch.db import batches as batch_data
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, JobStep
from tests.factories import make_org
from tests.integration.rest_support import bearer, finish_with_failure, new_draft, set_status


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture()
def auth(org_id: uuid.UUID) -> dict[str, str]:
    return bearer(org_id)


def new_org() -> uuid.UUID:
    with session_scope() as session:
        return make_org(session)


def _ids(page: dict[str, object]) -> list[str]:
    return [item["id"] for item in page["items"]]  # type: ignore[attr-defined]


def test_list_filters_by_statuses_searches_sorts_and_counts(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    alpha = new_draft(org_id, 1, name="Alpha Auckland")
    beta = new_draft(org_id, 3, name="beta wellington")
    gamma = new_draft(org_id, 2, name="Gamma auckland")
    set_status(gamma, "cancelled")
    set_status(beta, "paused")

    both = client.get("/registration-batches", headers=auth, params={"status": "draft,cancelled"})
    assert both.status_code == 200, both.text
    assert set(_ids(both.json())) == {str(alpha), str(gamma)}
    assert both.json()["total_count"] == 2

    found = client.get("/registration-batches", headers=auth, params={"q": "AUCK"}).json()
    assert set(_ids(found)) == {str(alpha), str(gamma)} and found["total_count"] == 2
    literal = client.get("/registration-batches", headers=auth, params={"q": "%"}).json()
    assert literal["items"] == [] and literal["total_count"] == 0

    by_size = client.get(
        "/registration-batches", headers=auth, params={"sort": "size", "order": "asc"}
    ).json()
    assert _ids(by_size) == [str(alpha), str(gamma), str(beta)]
    by_name = client.get("/registration-batches", headers=auth, params={"sort": "name"}).json()
    assert _ids(by_name) == [str(gamma), str(beta), str(alpha)]
    assert by_name["items"][0]["total_steps"] == 12

    bad = client.get("/registration-batches", headers=auth, params={"sort": "colour"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    bad_include = client.get("/registration-batches", headers=auth, params={"include": "steps"})
    assert bad_include.status_code == 422, bad_include.text
    assert "'steps' cannot be included here; use jobs" in bad_include.text


def test_cursor_pages_stay_stable_while_batches_are_created(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    made = [new_draft(org_id, 1, name=f"page {i}") for i in range(5)]
    for sort in ("created", "name", "finished"):
        params: dict[str, str | int] = {"limit": 2, "sort": sort}
        first = client.get("/registration-batches", headers=auth, params=params).json()
        new_draft(org_id, 1, name="page 9 (inserted meanwhile)")
        seen = _ids(first)
        cursor = first["next_cursor"]
        while cursor:
            page = client.get(
                "/registration-batches", headers=auth, params={**params, "cursor": cursor}
            ).json()
            seen += _ids(page)
            cursor = page["next_cursor"]
        assert len(seen) == len(set(seen)), sort
        assert {str(b) for b in made} <= set(seen), sort

    other_order = client.get(
        "/registration-batches",
        headers=auth,
        params={"limit": 2, "sort": "size", "cursor": first["next_cursor"] or "x"},
    )
    assert other_order.status_code == 422, other_order.text
    assert "is not a cursor of this list in this order" in other_order.text
    with_offset = client.get(
        "/registration-batches",
        headers=auth,
        params={"offset": 2, "cursor": first["next_cursor"] or "x"},
    )
    assert with_offset.status_code == 422 and "use one or the other" in with_offset.text
    by_offset = client.get("/registration-batches", headers=auth, params={"offset": 6}).json()
    assert len(by_offset["items"]) == by_offset["total_count"] - 6 == 2


def test_current_step_and_job_previews_of_a_failed_batch(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    done, failed = finish_with_failure(batch)
    page = client.get("/registration-batches", headers=auth, params={"include": "jobs"}).json()
    [item] = page["items"]
    assert (item["current_step"], item["total_steps"]) == (7, 12)
    assert [(j["job_id"], j["status"], j["current_step"]) for j in item["jobs"]] == [
        (str(done), "completed", None),
        (str(failed), "failed", 7),
    ]
    assert item["jobs"][0]["city"] is not None and item["jobs"][0]["name"]
    plain = client.get("/registration-batches", headers=auth).json()
    assert plain["items"][0]["jobs"] is None


def test_a_batch_pages_its_jobs_and_leaves_results_out_unless_asked(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 5)
    finish_with_failure(batch)
    with session_scope() as session:
        job = list(session.scalars(batch_data.select_jobs(batch)))[3]
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == job.id, JobStep.step_number.in_([1, 2, 3, 4]))
            .values(status="completed")
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == job.id, JobStep.step_number == 5)
            .values(status="retrying", attempts=2)
        )
        session.execute(update(Batch).where(Batch.id == batch).values(status="in_progress"))

    url = f"/registration-batches/{batch}"
    first = client.get(url, headers=auth, params={"limit": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["jobs_total"] == 5 and len(body["jobs"]) == 2 and body["next_cursor"]
    assert body["current_step"] == 5 and body["total_steps"] == 12
    assert all(s["result_data"] is None for j in body["jobs"] for s in j["steps"])
    second = client.get(url, headers=auth, params={"limit": 2, "cursor": body["next_cursor"]})
    jobs = second.json()["jobs"]
    assert [j["position"] for j in jobs] == [2, 3] and jobs[1]["current_step"] == 5
    # each job of the page with its own twelve steps, in order, and no other job's
    assert all([s["step_number"] for s in j["steps"]] == list(range(1, 13)) for j in jobs)
    assert [s["status"] for s in jobs[1]["steps"][3:6]] == ["completed", "retrying", "pending"]
    assert jobs[0]["steps"][4]["status"] != "retrying"
    third = client.get(
        url, headers=auth, params={"limit": 2, "cursor": second.json()["next_cursor"]}
    )
    assert [j["position"] for j in third.json()["jobs"]] == [4]
    assert third.json()["next_cursor"] is None

    results = client.get(url, headers=auth, params={"include": "results"}).json()
    step5 = results["jobs"][0]["steps"][4]
    assert step5["result_data"]["platform_restaurant_id"] == "pr_123"
    foreign = client.get(
        f"/registration-batches/{new_draft(org_id, 1)}",
        headers=auth,
        params={"cursor": body["next_cursor"]},
    )
    assert foreign.status_code == 422 and foreign.json()["errors"][0]["field"] == "cursor"


def test_the_export_reads_the_batch_in_chunks_and_keeps_every_row_in_order(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from regbatch.services import exporting

    monkeypatch.setattr(exporting, "EXPORT_CHUNK", 2)
    batch = new_draft(org_id, 5)
    finish_with_failure(batch)
    url = f"/registration-batches/{batch}/export"
    with session_scope() as session:
        expected = [str(j.restaurant_id) for j in session.scalars(batch_data.select_jobs(batch))]
    text = client.get(url, headers=auth).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["restaurant_id"] for r in rows] == expected
    assert rows[1]["failing_step"] == "07-services_configuration"
    document = client.get(url, headers=auth, params={"format": "json"}).json()
    assert [r["restaurant_id"] for r in document["rows"]] == expected
    assert document["batch"]["id"] == str(batch) and document["batch"]["failed"] == 1
    other = bearer(new_org())
    assert client.get(url, headers=other).status_code == 404


def test_cancel_answers_202_and_announces_the_cancel_after_the_answer(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from regbatch.api.rest import actions

    announced: list[tuple[uuid.UUID, str]] = []
    monkeypatch.setattr(
        actions, "announce_cancel", lambda detail: announced.append((detail.id, detail.status))
    )
    batch = new_draft(org_id, 1)
    response = client.post(f"/registration-batches/{batch}/cancel", headers=auth)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/registration-batches/{batch}"
    assert announced == [(batch, "cancelled")]
