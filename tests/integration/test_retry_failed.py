"""Retry failed is safe to repeat: however many calls arrive at once (service, REST, CLI), one
retry batch is made for a batch's failed restaurants, and the one-unfinished-batch rule holds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from regbatch.api.rest import create_app
from regbatch.audit import Operation
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, OperationLog, Restaurant
from regbatch.errors import ConflictError
from regbatch.services import batches, lifecycle
from tests.cli import cli, cli_json
from tests.integration.rest_support import (
    all_returned,
    bearer,
    concurrently,
    finish_with_failure,
    new_draft,
    row_counts,
    set_status,
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def _retry_batches(original: uuid.UUID) -> list[uuid.UUID]:
    with session_scope() as session:
        return list(session.scalars(select(Batch.id).where(Batch.retry_of_batch_id == original)))


def _restaurants_of(batch_id: uuid.UUID) -> list[uuid.UUID]:
    with session_scope() as session:
        query = select(Job.restaurant_id).where(Job.batch_id == batch_id).order_by(Job.position)
        return list(session.scalars(query))


def _failed_batch(org_id: uuid.UUID, count: int = 2) -> tuple[uuid.UUID, uuid.UUID]:
    """A failed batch of `count` restaurants whose second failed; (batch, failed restaurant)."""
    batch = new_draft(org_id, count)
    finish_with_failure(batch)
    return batch, _restaurants_of(batch)[1]


def test_ten_concurrent_retries_make_one_retry_batch(org_id: uuid.UUID) -> None:
    batch, failed = _failed_batch(org_id)
    outcomes = all_returned(concurrently(10, lambda _: lifecycle.retry_failed(batch, "user:test")))
    [retry] = _retry_batches(batch)
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert {o.batch_id for o in outcomes} == {retry}
    assert sorted(o.existed for o in outcomes) == [False] + [True] * 9
    assert _restaurants_of(retry) == [failed]
    with session_scope() as session:
        logged = session.scalar(
            select(func.count())
            .select_from(OperationLog)
            .where(
                OperationLog.batch_id == batch,
                OperationLog.operation == Operation.RETRY_BATCH_CREATED,
            )
        )
    assert logged == 1


def test_ten_concurrent_rest_retries_answer_one_201_and_nine_200(
    client: TestClient, org_id: uuid.UUID
) -> None:
    auth = bearer(org_id)
    batch, _ = _failed_batch(org_id)
    path = f"/registration-batches/{batch}/retry-failed"
    answers = all_returned(concurrently(10, lambda _: client.post(path, headers=auth)))
    [retry] = _retry_batches(batch)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 9 + [201], [a.text for a in answers]
    for answer in answers:
        body = answer.json()
        assert body["new_batch_id"] == str(retry) and body["status"] == "draft"
        assert body["already_existed"] is (answer.status_code == 200)
    created = next(a for a in answers if a.status_code == 201)
    assert created.headers["location"] == f"/registration-batches/{retry}"


def test_a_cancelled_retry_batch_makes_room_for_a_new_one_a_finished_one_is_the_answer(
    client: TestClient, org_id: uuid.UUID
) -> None:
    auth = bearer(org_id)
    batch, failed = _failed_batch(org_id)
    first = client.post(f"/registration-batches/{batch}/retry-failed", headers=auth).json()
    cancelled = client.post(f"/registration-batches/{first['new_batch_id']}/cancel", headers=auth)
    assert cancelled.json()["status"] == "cancelled"
    second = client.post(f"/registration-batches/{batch}/retry-failed", headers=auth)
    assert second.status_code == 201, second.text
    second_id = second.json()["new_batch_id"]
    assert second_id != first["new_batch_id"]
    assert _restaurants_of(uuid.UUID(second_id)) == [failed]
    set_status(uuid.UUID(second_id), "completed")
    again = client.post(f"/registration-batches/{batch}/retry-failed", headers=auth)
    assert again.status_code == 200, again.text
    assert again.json() == {
        "new_batch_id": second_id,
        "status": "completed",
        "already_existed": True,
        "started_at": None,
        "first_job_id": None,
        "flow_run_id": None,
    }
    assert len(_retry_batches(batch)) == 2


def test_failures_after_a_retry_get_a_retry_batch_of_their_own(org_id: uuid.UUID) -> None:
    batch = new_draft(org_id, 3)
    finish_with_failure(batch)  # the third restaurant is still pending
    set_status(batch, "paused")
    first = lifecycle.retry_failed(batch)
    first_restaurants = _restaurants_of(first.batch_id)
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.batch_id == batch, Job.position == 2).values(status="failed")
        )
    set_status(batch, "failed")
    second = lifecycle.retry_failed(batch)
    assert not second.existed and second.batch_id != first.batch_id
    assert _restaurants_of(second.batch_id) == [_restaurants_of(batch)[2]]
    assert _restaurants_of(first.batch_id) == first_restaurants
    third = lifecycle.retry_failed(batch)
    assert (third.batch_id, third.existed) == (second.batch_id, True)


def test_a_failed_restaurant_busy_in_another_unfinished_batch_is_a_conflict(
    org_id: uuid.UUID,
) -> None:
    batch, failed = _failed_batch(org_id)
    other = batches.create_batch(org_id, name="elsewhere", restaurant_ids=[failed])
    with session_scope() as session:
        name = session.scalar(select(Restaurant.name).where(Restaurant.id == failed))
    before = row_counts()
    with pytest.raises(
        ConflictError,
        match=rf"restaurant '{name}' \({failed}\) is in unfinished batch {other} \(draft\); .*"
        "wait for that batch to finish or cancel it",
    ):
        lifecycle.retry_failed(batch)
    assert row_counts() == before
    lifecycle.cancel_batch(other)
    assert _restaurants_of(lifecycle.retry_failed(batch).batch_id) == [failed]


def test_retry_failed_of_a_batch_without_failures_or_still_running_is_refused(
    org_id: uuid.UUID,
) -> None:
    running = new_draft(org_id, 1)
    set_status(running, "in_progress")
    with pytest.raises(ConflictError, match="is 'in_progress'; retry its failed restaurants"):
        lifecycle.retry_failed(running)
    clean = new_draft(org_id, 1)
    set_status(clean, "completed")
    with pytest.raises(ConflictError, match=f"batch {clean} has no failed restaurants"):
        lifecycle.retry_failed(clean)
    assert _retry_batches(running) == _retry_batches(clean) == []


def test_the_cli_says_the_retry_batch_already_exists(org_id: uuid.UUID) -> None:
    batch, _ = _failed_batch(org_id)
    made = cli_json("batch", "retry-failed", str(batch), "--no-run")
    assert made["already_existed"] is False and made["status"] == "draft"
    again = cli("batch", "retry-failed", str(batch), "--no-run").stdout
    assert again.strip() == (
        f"retry batch {made['new_batch_id']} already exists (draft); "
        f"run it with `regbatch batch run {made['new_batch_id']}`"
    )
    set_status(uuid.UUID(made["new_batch_id"]), "in_progress")
    running = cli("batch", "retry-failed", str(batch)).stdout
    assert f"retry batch {made['new_batch_id']} already exists (in_progress)" in running
    as_json = cli_json("batch", "retry-failed", str(batch))
    assert as_json == {
        "new_batch_id": made["new_batch_id"],
        "already_existed": True,
        "status": "in_progress",
    }
    assert _retry_batches(batch) == [uuid.UUID(made["new_batch_id"])]
