"""Batch creation, reads and listing on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from regbatch.db import batch_pages, batches
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep, OperationLog
from regbatch.db.types import utcnow
from regbatch.errors import InvalidInputError
from regbatch.statuses import JOB_FINISHED, JobStatus, StepStatus
from tests.factories import make_org, make_restaurants
from tests.integration.rest_support import concurrently
from tests.integration.sql_support import running_batch, sql_sent
from tests.settings_env import settings_env


def new_batch(org_id: uuid.UUID, ids: list[uuid.UUID], **options: Any) -> uuid.UUID:
    with session_scope() as session:
        return batches.create_batch(
            session, organisation_id=org_id, name="Auckland Q4", restaurant_ids=ids, **options
        ).id


def row_counts() -> tuple[int, int, int, int]:
    with session_scope() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Batch, Job, JobStep, OperationLog)
        )  # type: ignore[return-value]


def test_creation_makes_one_job_and_twelve_steps_per_restaurant(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 3)
    batch_id = new_batch(org_id, ids, settings={"onboarding": {"create_user": True}})
    with session_scope() as session:
        detail = batches.batch_detail(session, batch_id)
        log = session.scalars(select(OperationLog).where(OperationLog.batch_id == batch_id)).all()
    assert detail.status == "draft" and detail.total == 3
    assert [j.restaurant_id for j in detail.jobs] == ids  # the batch keeps the given order
    for job in detail.jobs:
        assert [s.step_number for s in job.steps] == list(range(1, 13))
        assert {s.status for s in job.steps} == {"pending"}
    assert [entry.operation for entry in log] == ["batch_created"]


def test_bad_input_writes_nothing_and_names_every_bad_id(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        good, no_email = make_restaurants(session, org_id, 2)
        other_org = make_org(session)
        foreign = make_restaurants(session, other_org, 1)[0]
    with session_scope() as session:
        from regbatch.db.models import Restaurant

        session.get(Restaurant, no_email).email = None  # type: ignore[union-attr]
    unknown = uuid.uuid4()
    before = row_counts()
    with pytest.raises(InvalidInputError) as caught:
        new_batch(org_id, [good, unknown, foreign, good, no_email])
    assert row_counts() == before
    message = str(caught.value)
    for bad in (unknown, foreign, no_email):
        assert str(bad) in message
    subjects = {p.subject: p for p in caught.value.problems}
    assert "does not exist in this organisation" in subjects[str(unknown)].message
    assert "does not exist in this organisation" in subjects[str(foreign)].message
    assert "is listed twice" in subjects[str(good)].message
    assert any(
        p.field == "restaurants.email" and str(no_email) in (p.subject or "")
        for p in caught.value.problems
    )


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"restaurant_ids": []}, "restaurant_ids", "is empty"),
        (
            {"execution_mode": "turbo"},
            "execution_mode",
            "mode 'turbo' is not one of: sequential, parallel, distributed; choose one of them",
        ),
        ({"concurrency": 0, "execution_mode": "parallel"}, "concurrency", "0 is out of range"),
        ({"concurrency": 4}, "concurrency", "sequential mode runs one restaurant at a time"),
        ({"settings": {"paymnt": {}}}, "settings.paymnt", "is not a known setting"),
        ({"breaker_threshold": 2.0}, "breaker_threshold", "is not a fraction"),
    ],
)
def test_bad_options_are_rejected(
    org_id: uuid.UUID, options: dict, field: str, message: str
) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 1)
    options = {"restaurant_ids": ids, **options}
    before = row_counts()
    with pytest.raises(InvalidInputError) as caught, session_scope() as session:
        batches.create_batch(session, organisation_id=org_id, name="x", **options)
    assert any(p.field == field and message in p.message for p in caught.value.problems), (
        caught.value.problems
    )
    assert row_counts() == before


def test_more_than_the_maximum_is_rejected(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 3)
    with pytest.raises(InvalidInputError, match="more than the maximum of 2"):
        new_batch(org_id, ids, max_size=2)


def test_a_restaurant_in_an_unfinished_batch_cannot_join_another(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 1)
    first = new_batch(org_id, ids)
    with pytest.raises(InvalidInputError, match=f"is already in unfinished batch {first}"):
        new_batch(org_id, ids)


def test_concurrent_creations_sharing_a_restaurant_make_one_batch(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        shared, *own = make_restaurants(session, org_id, 9)
    # each creation also locks a restaurant of its own, on either side of the shared one
    outcomes = concurrently(8, lambda i: new_batch(org_id, [own[i], shared]))
    made = [o for o in outcomes if isinstance(o, uuid.UUID)]
    refused = [o for o in outcomes if not isinstance(o, uuid.UUID)]
    assert len(made) == 1, outcomes
    assert all(isinstance(e, InvalidInputError) for e in refused), refused
    for error in refused:
        assert f"{shared}: restaurant_ids: is already in unfinished batch {made[0]}" in str(error)
    with session_scope() as session:
        holding = session.scalar(
            select(func.count()).select_from(Job).where(Job.restaurant_id == shared)
        )
    assert holding == 1


def test_list_filters_and_pages_with_a_cursor(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 5)
    created = [new_batch(org_id, [rid]) for rid in ids]
    with session_scope() as session:
        session.get(Batch, created[0]).status = "failed"  # type: ignore[union-attr]
    with session_scope() as session:
        first = batches.list_batches(session, org_id, limit=2)
        second = batches.list_batches(session, org_id, limit=2, cursor=first.next_cursor)
        third = batches.list_batches(session, org_id, limit=2, cursor=second.next_cursor)
        failed = batches.list_batches(session, org_id, statuses=["failed"])
        recent = batches.list_batches(session, org_id, created_after=utcnow() + timedelta(hours=1))
    listed = [b.id for page in (first, second, third) for b in page.items]
    assert listed == list(reversed(created))  # newest first, no gaps, no repeats
    assert third.next_cursor is None
    assert [b.id for b in failed.items] == [created[0]]
    assert recent.items == []


def test_list_rejects_bad_filters(org_id: uuid.UUID) -> None:
    with pytest.raises(InvalidInputError) as caught, session_scope() as session:
        batches.list_batches(session, org_id, statuses=["running"], limit=0, cursor=None)
    assert {p.field for p in caught.value.problems} == {"status", "limit"}
    with pytest.raises(InvalidInputError, match="is not a cursor"), session_scope() as session:
        batches.list_batches(session, org_id, cursor="garbage!")


@contextmanager
def selects() -> Iterator[list[str]]:
    """The SELECT statements run on the engine inside the block (filled when it ends)."""
    found: list[str] = []
    with sql_sent() as sent:
        yield found
    found += [s for s in sent if s.lstrip().upper().startswith("SELECT")]


def batch_of(org_id: uuid.UUID, size: int) -> uuid.UUID:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, size)
    return new_batch(org_id, ids)


def test_detail_costs_the_same_few_queries_whatever_the_size(org_id: uuid.UUID) -> None:
    def queries_for(size: int) -> int:
        batch_id = batch_of(org_id, size)
        with selects() as statements, session_scope() as session:
            detail = batches.batch_detail(session, batch_id)
        assert len(detail.jobs) == size and all(len(j.steps) == 12 for j in detail.jobs)
        return len(statements)

    assert queries_for(1) == queries_for(8) == 3


def test_a_page_of_jobs_costs_four_queries_and_counts_no_jobs(org_id: uuid.UUID) -> None:
    """The page's total comes from the batch's row: at 10,000 restaurants a COUNT of the jobs
    would scan them all at every read of the page."""

    def statements_for(size: int) -> tuple[list[str], int]:
        batch_id = batch_of(org_id, size)
        with selects() as statements, session_scope() as session:
            page = batch_pages.batch_jobs_page(session, batch_id, org_id, limit=2)
        assert len(page.jobs) == 2 and all(len(j.steps) == 12 for j in page.jobs)
        return statements, page.jobs_total

    (small, small_total), (big, big_total) = statements_for(3), statements_for(9)
    assert (small_total, big_total) == (3, 9)
    assert len(small) == len(big) == 4
    assert not any("count(" in s.lower() for s in big)


def test_detail_without_results_is_the_same_detail_minus_the_results(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 2)
    batch_id = new_batch(org_id, ids)
    with session_scope() as session:
        first = session.scalars(batches.select_jobs(batch_id)).first()
        assert first is not None
        step = session.scalars(
            select(JobStep).where(JobStep.job_id == first.id, JobStep.step_number == 1)
        ).one()
        step.status, step.attempts = StepStatus.COMPLETED, 1
        step.result_data = {"account_id": "acc-1"}
    with session_scope() as session:
        full = batches.batch_detail(session, batch_id)
        light = batches.batch_detail(session, batch_id, with_results=False)
    assert full.jobs[0].steps[0].result_data == {"account_id": "acc-1"}
    assert all(s.result_data is None for j in light.jobs for s in j.steps)
    for job in full.jobs:
        for s in job.steps:
            s.result_data = None
    assert light == full


def test_cancelling_a_batch_nobody_runs_logs_every_job_it_cancels(org_id: uuid.UUID) -> None:
    from regbatch.db import lifecycle
    from regbatch.db.oplog import read_log

    with session_scope() as session:
        ids = make_restaurants(session, org_id, 3)
    batch_id = new_batch(org_id, ids)
    with session_scope() as session:
        lifecycle.request_cancel(session, batch_id, "user")
    with session_scope() as session:
        detail = batches.batch_detail(session, batch_id)
        log = read_log(session, batch_id)
    assert detail.status == "cancelled" and detail.cancelled == 3
    assert {s.status for j in detail.jobs for s in j.steps} == {"cancelled"}
    job_entries = [e for e in log if e.operation == "job_cancelled"]
    assert [e.job_id for e in job_entries] == [j.id for j in detail.jobs]
    assert {e.actor for e in job_entries} == {"user"}
    assert log[-1].operation == "batch_cancelled"


@pytest.mark.parametrize(
    ("mode", "given", "expected"),
    [("parallel", None, 7), ("distributed", None, 7), ("sequential", None, 1), ("parallel", 4, 4)],
)
def test_a_batch_from_the_prefect_form_takes_the_default_concurrency_when_none_is_given(
    org_id: uuid.UUID, mode: str, given: int | None, expected: int
) -> None:
    """The batch flow's form (BatchRun) leaves concurrency empty unless the user fills it in:
    a new parallel batch then runs REGBATCH_DEFAULT_CONCURRENCY restaurants at once, as one
    made by the CLI, REST or Python does."""
    import asyncio

    from regbatch.flow_params import BatchRun
    from regbatch.tasks.batches import create_batch_from_run

    with session_scope() as session:
        ids = make_restaurants(session, org_id, 2)
    form: dict[str, Any] = {
        "organisation": str(org_id),
        "name": "from the form",
        "restaurant_ids": ids,
    }
    if given is not None:
        form["concurrency"] = given
    run = BatchRun.model_validate({**form, "execution_mode": mode})
    with settings_env({"REGBATCH_DEFAULT_CONCURRENCY": "7"}):
        batch_id = asyncio.run(create_batch_from_run.fn(run))
    with session_scope() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.execution_mode, batch.concurrency) == (mode, expected)


def _set_jobs(batch_id: uuid.UUID, statuses: dict[int, JobStatus], url: str | None = None) -> None:
    """Jobs at these positions take these statuses (finished ones a second apart, in order)."""
    base = utcnow() - timedelta(minutes=5)
    with session_scope(url) as session:
        jobs = {j.position: j for j in session.scalars(batches.select_jobs(batch_id))}
        for position, status in statuses.items():
            jobs[position].status = status
            if status in JOB_FINISHED:
                jobs[position].completed_at = base + timedelta(seconds=position)


def _live(batch_id: uuid.UUID, limit: int, url: str | None = None) -> list[tuple[int, str]]:
    with session_scope(url) as session:
        page = batch_pages.live_jobs_page(session, batch_id, limit=limit)
        assert page.jobs_total == len(list(session.scalars(batches.select_jobs(batch_id))))
    assert all(len(j.steps) == 12 for j in page.jobs)
    return [(j.position, str(j.status)) for j in page.jobs]


def test_the_live_page_of_a_big_batch_holds_who_runs_the_latest_failures_then_the_rest(
    url: str | None,
) -> None:
    batch_id, _, _ = running_batch(url, 12)
    J = JobStatus
    _set_jobs(batch_id, {0: J.COMPLETED, 1: J.FAILED, 2: J.IN_PROGRESS, 5: J.FAILED,
                         7: J.IN_PROGRESS, 8: J.FAILED}, url)  # fmt: skip
    # failures take at most a third of the rows (the latest); the room left: the latest finished
    assert _live(batch_id, limit=4, url=url) == [
        (2, "in_progress"),
        (7, "in_progress"),
        (8, "failed"),
        (0, "completed"),
    ]


def test_the_live_page_keeps_failures_in_view_when_more_run_than_it_shows(
    url: str | None,
) -> None:
    batch_id, _, _ = running_batch(url, 12)
    running = dict.fromkeys(range(8), JobStatus.IN_PROGRESS)
    _set_jobs(batch_id, {**running, 9: JobStatus.FAILED, 10: JobStatus.FAILED}, url)
    assert _live(batch_id, limit=6, url=url) == [
        (0, "in_progress"),
        (1, "in_progress"),
        (2, "in_progress"),
        (3, "in_progress"),
        (10, "failed"),
        (9, "failed"),
    ]


def test_the_live_page_of_a_big_batch_with_nothing_running_shows_the_latest_and_the_next(
    url: str | None,
) -> None:
    """A paused batch (its jobs back to pending) or one that ended still shows restaurants."""
    batch_id, _, _ = running_batch(url, 12)
    _set_jobs(batch_id, dict.fromkeys(range(4), JobStatus.COMPLETED), url)
    assert _live(batch_id, limit=5, url=url) == [
        (3, "completed"),
        (2, "completed"),
        (1, "completed"),
        (0, "completed"),
        (4, "pending"),
    ]


def test_the_live_page_of_a_small_batch_holds_every_restaurant_in_order(
    url: str | None,
) -> None:
    batch_id, _, _ = running_batch(url, 3)
    _set_jobs(batch_id, {1: JobStatus.FAILED}, url)
    assert [position for position, _ in _live(batch_id, limit=3, url=url)] == [0, 1, 2]


def test_the_live_page_costs_the_same_queries_whatever_the_batch_size(org_id: uuid.UUID) -> None:
    """`batch run` and `batch watch` poll it twice a second: at 10,000 restaurants a read of
    the whole batch took seconds of CPU, in the runner's own process."""

    def statements_for(size: int) -> list[str]:
        batch_id = batch_of(org_id, size)
        _set_jobs(batch_id, {0: JobStatus.IN_PROGRESS, 1: JobStatus.FAILED})
        with selects() as statements, session_scope() as session:
            page = batch_pages.live_jobs_page(session, batch_id, limit=3)
        assert [j.position for j in page.jobs] == [0, 1, 2]
        return statements

    small, big = statements_for(4), statements_for(40)
    assert len(small) == len(big) <= 6
    assert all(" LIMIT " in s.upper() for s in big if "registration_jobs" in s.lower())
    assert not any("count(" in s.lower() for s in big)


def test_the_cli_watcher_reads_the_live_page_and_watch_reads_the_batch_whole_once_at_the_end(
    org_id: uuid.UUID,
) -> None:
    from regbatch.api.cli.progress import LIVE_ROWS, BatchWatcher, watch_until_finished

    batch_id = batch_of(org_id, LIVE_ROWS + 10)
    _set_jobs(batch_id, {0: JobStatus.IN_PROGRESS})
    with selects() as statements:
        tick = BatchWatcher(batch_id, show=False)._read()
    assert tick is not None and len(tick.jobs) == LIVE_ROWS and tick.jobs_total == LIVE_ROWS + 10
    assert len(statements) <= 6

    with session_scope() as session:  # it ended: watch returns it whole
        session.execute(update(Batch).where(Batch.id == batch_id).values(status="completed"))
    with selects() as statements:
        detail = watch_until_finished(batch_id, interval_s=0.01)
    assert len(detail.jobs) == LIVE_ROWS + 10
    assert sum("job_steps" in s for s in statements) == 1  # one read of the steps, at the end
