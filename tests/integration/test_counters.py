"""Batch counters are derived from job rows in the job's own transaction, exact under concurrency."""

from __future__ import annotations

import threading
import uuid

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.jobs import get_job, set_job_status
from regbatch.statuses import JobStatus
from tests.factories import make_restaurants

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
