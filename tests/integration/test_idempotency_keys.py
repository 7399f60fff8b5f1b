"""Idempotency-Key on the REST POSTs that create things, on PostgreSQL: a request sent again
gets the first answer again and creates nothing; keys are per organisation and per request."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

import regbatch.services.batches as batch_services
from regbatch.api.rest import create_app
from regbatch.api.rest import idempotency as rest_idempotency
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, IdempotencyKey
from regbatch.db.types import utcnow
from tests.factories import make_org, make_restaurants
from tests.integration.rest_support import (
    all_returned,
    bearer,
    concurrently,
    finish_with_failure,
    new_draft,
    row_counts,
)

IDEMPOTENT_ROUTES = {
    ("post", "/registration-batches"),
    ("post", "/registration-batches/{batch_id}/retry-failed"),
    ("post", "/registrations"),
    ("post", "/templates/{ref}/run"),
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture()
def auth(org_id: uuid.UUID) -> dict[str, str]:
    return bearer(org_id)


def _key() -> str:
    return f"test-{uuid.uuid4()}"


def _batch_body(org_id: uuid.UUID, count: int = 2, **fields: Any) -> dict[str, Any]:
    with session_scope() as session:
        ids = [str(i) for i in make_restaurants(session, org_id, count)]
    return {"name": "idempotent", "restaurant_ids": ids, **fields}


def _batches_of(org_id: uuid.UUID) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(Batch).where(Batch.organisation_id == org_id)
        return int(session.scalar(query) or 0)


def _stored(org_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    with session_scope() as session:
        return session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.organisation_id == org_id, IdempotencyKey.key == key
            )
        )


def test_the_same_key_and_body_answer_the_first_answer_and_create_once(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    body = _batch_body(org_id, common_config={"account": {"email": "hunter2-owner@example.com"}})
    headers = {**auth, "Idempotency-Key": _key()}
    first = client.post("/registration-batches", headers=headers, json=body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # the same JSON with its keys in another order and other spacing is the same request
    reordered = dict(reversed(list(body.items())))
    again = client.post("/registration-batches", headers=headers, json=reordered)
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert _batches_of(org_id) == 1
    stored = _stored(org_id, headers["Idempotency-Key"])
    assert stored is not None and stored.status_code == 201 and stored.completed_at
    assert stored.response_body == first.text and len(stored.request_hash) == 64
    assert (stored.method, stored.path) == ("POST", "/registration-batches")
    row_text = " ".join(str(v) for v in vars(stored).values())
    assert "hunter2" not in row_text and body["restaurant_ids"][0] not in row_text


def test_the_same_key_with_another_body_or_route_is_refused_with_a_code(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    key = _key()
    headers = {**auth, "Idempotency-Key": key}
    first = client.post("/registration-batches", headers=headers, json=_batch_body(org_id))
    assert first.status_code == 201, first.text
    before = row_counts()
    other_body = client.post("/registration-batches", headers=headers, json=_batch_body(org_id))
    assert other_body.status_code == 422
    assert other_body.json() == {
        "detail": f"Idempotency-Key {key!r} was already used for POST /registration-batches "
        "with a different body or query; a key names one request: send a new key for a new "
        "request, or that request unchanged to get its answer again",
        "code": "IDEMPOTENCY_KEY_REUSED",
    }
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1)
    other_route = client.post(
        "/registrations", headers=headers, json={"restaurant_id": str(rid), "auto_start": False}
    )
    assert other_route.status_code == 422
    assert other_route.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "another request, POST /registration-batches" in other_route.json()["detail"]
    other_query = client.post(
        f"/registration-batches/{first.json()['batch_id']}/retry-failed",
        headers=headers,
    )
    assert other_query.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert row_counts() == before


def test_concurrent_requests_with_one_key_create_one_batch_and_answer_alike(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    body = _batch_body(org_id, 3)
    headers = {**auth, "Idempotency-Key": _key()}
    answers = all_returned(
        concurrently(5, lambda _: client.post("/registration-batches", headers=headers, json=body))
    )
    seen = {(a.status_code, a.text) for a in answers}
    assert len(seen) == 1 and answers[0].status_code == 201, seen
    assert _batches_of(org_id) == 1


def test_concurrent_retry_failed_with_one_key_answer_alike(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    batch = new_draft(org_id, 2)
    finish_with_failure(batch)
    headers = {**auth, "Idempotency-Key": _key()}
    path = f"/registration-batches/{batch}/retry-failed"
    answers = all_returned(concurrently(5, lambda _: client.post(path, headers=headers)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    new_id = answers[0].json()["new_batch_id"]
    assert {a.headers["location"] for a in answers} == {f"/registration-batches/{new_id}"}
    # without the key a repeat is still safe: the retry batch that exists is the answer
    bare = client.post(path, headers=auth)
    assert bare.status_code == 200 and bare.json()["already_existed"] is True


@pytest.mark.parametrize(
    "key",
    ["", "x" * 201, b"caf\xe9", b"tab\there", b"bell\x07"],
    ids=["empty", "too-long", "latin-1", "tab", "control"],
)
def test_a_malformed_key_is_a_400_and_changes_nothing(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str], key: str | bytes
) -> None:
    body = _batch_body(org_id)
    before = row_counts()
    raw = key if isinstance(key, bytes) else key.encode()
    headers = {name.encode(): value.encode() for name, value in auth.items()}
    response = client.post(
        "/registration-batches", headers={**headers, b"Idempotency-Key": raw}, json=body
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert "send 1 to 200 printable ASCII characters" in response.json()["detail"]
    assert row_counts() == before
    with session_scope() as session:
        stored = session.scalar(
            select(func.count())
            .select_from(IdempotencyKey)
            .where(IdempotencyKey.organisation_id == org_id)
        )
    assert stored == 0


def test_the_longest_key_is_accepted(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    key = "k" * 190 + " ~!@#$%^&*"
    response = client.post(
        "/registration-batches", headers={**auth, "Idempotency-Key": key}, json=_batch_body(org_id)
    )
    assert response.status_code == 201, response.text
    assert _stored(org_id, key) is not None


def test_without_the_header_nothing_changes(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    body = _batch_body(org_id)
    first = client.post("/registration-batches", headers=auth, json=body)
    client.post(f"/registration-batches/{first.json()['batch_id']}/cancel", headers=auth)
    second = client.post("/registration-batches", headers=auth, json=body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["batch_id"] != second.json()["batch_id"]
    assert _batches_of(org_id) == 2
    with session_scope() as session:
        count = session.scalar(
            select(func.count())
            .select_from(IdempotencyKey)
            .where(IdempotencyKey.organisation_id == org_id)
        )
    assert count == 0


def test_with_the_header_a_cancelled_first_batch_is_not_made_again(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    body = _batch_body(org_id)
    headers = {**auth, "Idempotency-Key": _key()}
    first = client.post("/registration-batches", headers=headers, json=body)
    client.post(f"/registration-batches/{first.json()['batch_id']}/cancel", headers=auth)
    again = client.post("/registration-batches", headers=headers, json=body)
    assert again.json() == first.json() and _batches_of(org_id) == 1


def test_keys_of_one_organisation_do_not_collide_with_anothers(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        other = make_org(session)
    other_auth = bearer(other)
    key = _key()
    mine = client.post(
        "/registration-batches",
        headers={**auth, "Idempotency-Key": key},
        json=_batch_body(org_id),
    )
    theirs = client.post(
        "/registration-batches",
        headers={**other_auth, "Idempotency-Key": key},
        json=_batch_body(other),
    )
    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert mine.json()["batch_id"] != theirs.json()["batch_id"]
    assert "idempotent-replayed" not in theirs.headers
    assert _batches_of(org_id) == _batches_of(other) == 1


def test_a_4xx_answer_is_kept_and_answered_again(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    headers = {**auth, "Idempotency-Key": _key()}
    path = f"/registration-batches/{uuid.uuid4()}/retry-failed"
    first = client.post(path, headers=headers)
    assert first.status_code == 404
    again = client.post(path, headers=headers)
    assert (again.status_code, again.json()) == (404, first.json())
    assert again.headers["idempotent-replayed"] == "true"


def test_a_request_rejected_before_it_runs_keeps_no_key(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    headers = {**auth, "Idempotency-Key": _key()}
    invalid = client.post("/registration-batches", headers=headers, json={"restaurant_ids": 7})
    assert invalid.status_code == 422
    assert _stored(org_id, headers["Idempotency-Key"]) is None
    fixed = client.post("/registration-batches", headers=headers, json=_batch_body(org_id))
    assert fixed.status_code == 201, fixed.text


def test_a_failure_releases_the_key_for_the_next_attempt(
    client: TestClient,
    org_id: uuid.UUID,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = _batch_body(org_id)
    headers = {**auth, "Idempotency-Key": _key()}
    create = batch_services.create_batch

    def broken(*args: Any, **kwargs: Any) -> uuid.UUID:
        raise RuntimeError("the database went away mid-request")

    monkeypatch.setattr(batch_services, "create_batch", broken)
    with TestClient(create_app(), raise_server_exceptions=False) as fragile:
        failed = fragile.post("/registration-batches", headers=headers, json=body)
    assert failed.status_code == 500
    assert _stored(org_id, headers["Idempotency-Key"]) is None
    monkeypatch.setattr(batch_services, "create_batch", create)
    retried = client.post("/registration-batches", headers=headers, json=body)
    assert retried.status_code == 201, retried.text
    assert _batches_of(org_id) == 1


def test_a_request_arriving_while_the_first_runs_waits_or_is_told_to_come_back(
    client: TestClient,
    org_id: uuid.UUID,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = _batch_body(org_id)
    headers = {**auth, "Idempotency-Key": _key()}
    create = batch_services.create_batch
    started, go_on = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> uuid.UUID:
        started.set()
        assert go_on.wait(30)
        return create(*args, **kwargs)

    monkeypatch.setattr(batch_services, "create_batch", slow)
    monkeypatch.setattr(rest_idempotency, "WAIT_SECONDS", 0.3)
    first: list[Any] = []
    runner = threading.Thread(
        target=lambda: first.append(
            client.post("/registration-batches", headers=headers, json=body)
        )
    )
    runner.start()
    assert started.wait(30)
    busy = client.post("/registration-batches", headers=headers, json=body)
    assert busy.status_code == 409
    assert busy.json()["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert busy.headers["retry-after"] == "1"
    monkeypatch.setattr(rest_idempotency, "WAIT_SECONDS", 30.0)
    waiting: list[Any] = []
    waiter = threading.Thread(
        target=lambda: waiting.append(
            client.post("/registration-batches", headers=headers, json=body)
        )
    )
    waiter.start()
    go_on.set()
    runner.join(30)
    waiter.join(30)
    assert first[0].status_code == 201, first[0].text
    assert (waiting[0].status_code, waiting[0].json()) == (201, first[0].json())
    assert _batches_of(org_id) == 1


def test_expired_and_abandoned_keys_are_forgotten(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    expired, abandoned = _key(), _key()
    for key in (expired, abandoned):
        made = client.post(
            "/registration-batches",
            headers={**auth, "Idempotency-Key": key},
            json=_batch_body(org_id, 1),
        )
        assert made.status_code == 201
    with session_scope() as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == expired)
            .values(created_at=utcnow() - timedelta(hours=25))
        )
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == abandoned)
            .values(created_at=utcnow() - timedelta(minutes=6), completed_at=None)
        )
    for key in (expired, abandoned):
        reused = client.post(
            "/registration-batches",
            headers={**auth, "Idempotency-Key": key},
            json=_batch_body(org_id, 1),
        )
        assert reused.status_code == 201, reused.text
    assert _batches_of(org_id) == 4


def test_registrations_and_template_runs_take_a_key(
    client: TestClient, org_id: uuid.UUID, auth: dict[str, str]
) -> None:
    with session_scope() as session:
        [rid] = make_restaurants(session, org_id, 1, city="Nelson")
    headers = {**auth, "Idempotency-Key": _key()}
    single = {"restaurant_id": str(rid), "auto_start": False}
    first = client.post("/registrations", headers=headers, json=single)
    again = client.post("/registrations", headers=headers, json=single)
    assert first.status_code == 201 and again.json() == first.json()
    client.post(f"/registration-batches/{first.json()['batch_id']}/cancel", headers=auth)
    client.post("/templates", headers=auth, json={"name": "nelson", "city": "Nelson"})
    run_headers = {**auth, "Idempotency-Key": _key()}
    params = {"auto_start": "false"}
    run = client.post("/templates/nelson/run", headers=run_headers, params=params)
    rerun = client.post("/templates/nelson/run", headers=run_headers, params=params)
    assert run.status_code == 201 and run.json()["batch_id"]
    assert (rerun.status_code, rerun.json()) == (201, run.json())
    assert _batches_of(org_id) == 2


def test_openapi_documents_the_header_on_the_creating_routes_only(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if (method, path) in IDEMPOTENT_ROUTES:
                assert names == {"Idempotency-Key"}, (method, path)
                [header] = [p for p in operation["parameters"] if p["in"] == "header"]
                assert "IDEMPOTENCY_KEY_REUSED" in header["description"]
                assert {"400", "409", "422"} <= set(operation["responses"])
            else:
                assert "Idempotency-Key" not in names, (method, path)
    assert "code" in schema["components"]["schemas"]["ErrorBody"]["properties"]
