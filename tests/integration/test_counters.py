"""Batch counters, the breaker's window counters among them, are moved with each job's status in
the job's own transaction: exact under concurrency, and equal to a recount of the job rows."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from regbatch.db import batches, lifecycle
from regbatch.db.engine import session_scope
from regbatch.db.jobs import get_job, set_job_status
from regbatch.db.models import Batch
from regbatch.statuses import JobStatus
from tests.factories import make_restaurants
from tests.integration.sql_support import running_batch

JOBS = 24
THREADS = 6


def test_concurrent_job_changes_leave_exact_counters(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, JOBS)
        batch = batches.create_batch(
            session,
            organisation_id=org_id,
            name="race",
            restaurant_ids=ids,
            execution_mode="parallel",
            concurrency=THREADS,
        )
        batch_id = batch.id
    with session_scope() as session:
        job_ids = [j.id for j in batches.unfinished_jobs(session, batch_id)]
    outcome = {
        job_id: JobStatus.FAILED if i % 3 == 0 else JobStatus.COMPLETED
        for i, job_id in enumerate(job_ids)
    }
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(mine: list[uuid.UUID]) -> None:
        try:
            barrier.wait()
            for job_id in mine:
                with session_scope() as session:
                    set_job_status(session, get_job(session, job_id), JobStatus.IN_PROGRESS)
                with session_scope() as session:
                    set_job_status(session, get_job(session, job_id), outcome[job_id])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(job_ids[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with session_scope() as session:
        stored = batches.get_batch(session, batch_id)
        counts = batches.job_counts(session, batch_id)
    expected_failed = sum(1 for s in outcome.values() if s == JobStatus.FAILED)
    assert (stored.completed_restaurants, stored.failed_restaurants) == (
        JOBS - expected_failed,
        expected_failed,
    )
    assert (counts.completed, counts.failed) == (JOBS - expected_failed, expected_failed)
    # never started: the breaker's window is the whole batch
    assert (stored.breaker_window_finished, stored.breaker_window_failed) == (
        JOBS,
        expected_failed,
    )


def test_a_change_committed_while_another_waits_is_counted(org_id: uuid.UUID) -> None:
    """The interleaving that loses an update without the lock: B recomputes while A is open."""
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 2)
        batch_id = batches.create_batch(
            session,
            organisation_id=org_id,
            name="interleave",
            restaurant_ids=ids,
            execution_mode="parallel",
            concurrency=2,
        ).id
    with session_scope() as session:
        first, second = (j.id for j in batches.unfinished_jobs(session, batch_id))
    for job_id in (first, second):
        with session_scope() as session:
            set_job_status(session, get_job(session, job_id), JobStatus.IN_PROGRESS)
    a_changed = threading.Event()

    def transaction_a() -> None:
        with session_scope() as session:
            set_job_status(session, get_job(session, first), JobStatus.COMPLETED)
            a_changed.set()
            threading.Event().wait(0.5)  # B starts its change while A is still open

    thread = threading.Thread(target=transaction_a)
    thread.start()
    a_changed.wait()
    with session_scope() as session:
        set_job_status(session, get_job(session, second), JobStatus.COMPLETED)
    thread.join()
    with session_scope() as session:
        assert batches.get_batch(session, batch_id).completed_restaurants == 2


_WINDOW = select(Batch.breaker_window_finished, Batch.breaker_window_failed)


def window_of(url: str | None, batch_id: uuid.UUID) -> tuple[int, int]:
    """(finished, failed) of the breaker's window as moved job by job; the test fails unless a
    recount of the job rows (recompute_counters, rolled back) gives the same."""
    with session_scope(url) as session:
        moved = tuple(session.execute(_WINDOW.where(Batch.id == batch_id)).one())
        batches.recompute_counters(session, batch_id)
        recounted = tuple(session.execute(_WINDOW.where(Batch.id == batch_id)).one())
        session.rollback()
    assert moved == recounted
    return moved[0], moved[1]


def move(url: str | None, job_id: uuid.UUID, *statuses: JobStatus) -> None:
    for status in statuses:
        with session_scope(url) as session:
            set_job_status(session, get_job(session, job_id), status)


def test_the_breaker_window_counts_only_jobs_finished_since_the_last_start_or_resume(
    url: str | None,
) -> None:
    batch_id, (a, b, c, d), _ = running_batch(url, 4, breaker_threshold=0.5, breaker_min_finished=2)
    move(url, a, JobStatus.IN_PROGRESS, JobStatus.FAILED)
    move(url, b, JobStatus.IN_PROGRESS, JobStatus.FAILED)
    assert window_of(url, batch_id) == (2, 2)
    with session_scope(url) as session:
        verdict = lifecycle.breaker_verdict(session, batch_id)
    assert verdict is not None and (verdict.failed, verdict.finished) == (2, 2)

    with session_scope(url) as session:  # paused, resumed: a new window
        lifecycle.pause_now(session, batch_id, "breaker", "breaker")
    with session_scope(url) as session:
        lifecycle.resume(session, batch_id, "tests")
    assert window_of(url, batch_id) == (0, 0)
    with session_scope(url) as session:
        lifecycle.begin_run(session, batch_id, "tests", lease_seconds=60)
        assert lifecycle.breaker_verdict(session, batch_id) is None

    # a job that failed before the window runs again: its old failure was never in the window
    move(url, a, JobStatus.IN_PROGRESS)
    assert window_of(url, batch_id) == (0, 0)
    move(url, a, JobStatus.COMPLETED)
    assert window_of(url, batch_id) == (1, 0)
    # one that failed inside the window and runs again leaves it until it finishes again
    move(url, c, JobStatus.IN_PROGRESS, JobStatus.FAILED)
    assert window_of(url, batch_id) == (2, 1)
    move(url, c, JobStatus.IN_PROGRESS)
    assert window_of(url, batch_id) == (1, 0)
    move(url, c, JobStatus.FAILED)
    move(url, d, JobStatus.SKIPPED)
    assert window_of(url, batch_id) == (3, 1)
    with session_scope(url) as session:
        assert lifecycle.breaker_verdict(session, batch_id) is None  # 1 of 3: not over half


def test_a_job_finished_by_a_clock_behind_the_window_start_counts_as_a_recount_says(
    url: str | None,
) -> None:
    """A worker whose clock is behind the host that resumed the batch writes completed_at
    before the window's start: the counters judge it by those times, as the recount does."""
    batch_id, (first, second), _ = running_batch(url, 2)
    ahead = datetime.now(UTC) + timedelta(minutes=5)  # the resuming host's clock
    with session_scope(url) as session:
        session.execute(
            update(Batch).where(Batch.id == batch_id).values(breaker_window_start=ahead)
        )
    move(url, first, JobStatus.IN_PROGRESS, JobStatus.FAILED)
    assert window_of(url, batch_id) == (0, 0)
    move(url, first, JobStatus.IN_PROGRESS, JobStatus.COMPLETED)
    move(url, second, JobStatus.IN_PROGRESS, JobStatus.FAILED)
    assert window_of(url, batch_id) == (0, 0)
