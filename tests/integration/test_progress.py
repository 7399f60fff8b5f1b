"""Batch progress: counts, histogram, ETA methods, and a fixed number of queries."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from regbatch.db.batches import select_jobs
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep
from regbatch.db.types import utcnow
from regbatch.errors import NotFoundError
from regbatch.services.progress import batch_progress
from tests.integration.rest_support import finish_with_failure, new_draft, set_status
from tests.integration.sql_support import sql_sent


def _jobs(batch_id: uuid.UUID) -> list[Job]:
    with session_scope() as session:
        return list(session.scalars(select_jobs(batch_id)))


def test_the_number_of_queries_does_not_grow_with_the_batch(org_id: uuid.UUID) -> None:
    small, large = new_draft(org_id, 1), new_draft(org_id, 12)
    with sql_sent() as small_queries:
        batch_progress(small, org_id)
    with sql_sent() as large_queries:
        progress = batch_progress(large, org_id)
    assert len(small_queries) == len(large_queries)
    # the batch, its jobs' counts, its steps' histogram, the restaurants' and the steps' averages
    assert len([q for q in large_queries if q.lstrip().upper().startswith("SELECT")]) == 5
    assert progress.total == 12 and progress.jobs["pending"] == 12


def test_the_steps_average_is_not_read_once_a_restaurant_completed(org_id: uuid.UUID) -> None:
    batch = new_draft(org_id, 3, execution_mode="parallel", concurrency=2)
    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == _jobs(batch)[0].id)
            .values(status="completed", started_at=now - timedelta(seconds=30), completed_at=now)
        )
    set_status(batch, "in_progress", started_at=now - timedelta(seconds=40))
    with sql_sent() as queries:
        progress = batch_progress(batch, org_id)
    assert len([q for q in queries if q.lstrip().upper().startswith("SELECT")]) == 4
    assert not [q for q in queries if "avg(registration_job_steps.duration_ms)" in q]
    assert progress.eta_method == "restaurant_average" and progress.eta_samples == 1


def test_eta_from_completed_restaurants(org_id: uuid.UUID) -> None:
    batch = new_draft(org_id, 7, execution_mode="parallel", concurrency=2)
    now = utcnow()
    jobs = _jobs(batch)
    with session_scope() as session:
        for job, seconds in zip(jobs[:2], (60, 120), strict=True):
            session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(
                    status="completed",
                    started_at=now - timedelta(seconds=seconds),
                    completed_at=now,
                )
            )
    set_status(batch, "in_progress", started_at=now - timedelta(seconds=150))
    progress = batch_progress(batch, org_id)
    # 5 left, 2 at a time: 3 waves of 90 s on average
    assert progress.eta_method == "restaurant_average" and progress.eta_samples == 2
    assert progress.eta_seconds == pytest.approx(270, abs=0.5)
    assert progress.percent == pytest.approx(28.6)
    assert progress.elapsed_seconds == pytest.approx(150, abs=5)


def test_eta_from_completed_steps_times_the_critical_path(org_id: uuid.UUID) -> None:
    batch = new_draft(org_id, 3)
    [first, *_] = _jobs(batch)
    with session_scope() as session:
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == first.id, JobStep.step_number.in_([1, 2]))
            .values(status="completed", duration_ms=2_000)
        )
        session.execute(
            update(JobStep)  # carried over from another batch: not run here, not averaged
            .where(JobStep.job_id == first.id, JobStep.step_number == 3)
            .values(status="completed", duration_ms=900_000, carried_over=True)
        )
    set_status(batch, "in_progress")
    progress = batch_progress(batch, org_id)
    # sequential: 3 restaurants one after another, 4 steps of 2 s each
    assert progress.eta_method == "step_average" and progress.eta_samples == 2
    assert progress.eta_seconds == pytest.approx(3 * 4 * 2.0)
    assert progress.steps[0].counts["completed"] == 1 and progress.steps[0].counts["pending"] == 2


def test_paused_and_finished_batches(org_id: uuid.UUID) -> None:
    batch = new_draft(org_id, 2)
    finish_with_failure(batch)
    with session_scope() as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch)
            .values(status="paused", paused_at=utcnow(), completed_at=None)
        )
    paused = batch_progress(batch, org_id)
    assert paused.status == "paused" and paused.eta_method == "finished"
    assert paused.elapsed_seconds == pytest.approx(100, abs=2)


def test_another_organisations_batch_is_not_found(org_id: uuid.UUID) -> None:
    batch = new_draft(org_id, 1)
    with pytest.raises(NotFoundError, match="does not exist"):
        batch_progress(batch, uuid.uuid4())
