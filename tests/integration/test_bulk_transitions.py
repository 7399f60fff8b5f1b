"""Bulk status changes follow the transition rule: no UPDATE moves a row the rule forbids.

Each bulk operation runs over jobs and steps in every status; afterwards every row either kept
its status or made a move `regbatch.statuses.TRANSITIONS` allows, and the rows the operation is
for did move.
"""

from __future__ import annotations

import uuid
from itertools import cycle

from sqlalchemy import select, update

from regbatch.db import batches, lifecycle
from regbatch.db import steps as ledger
from regbatch.db.engine import session_scope
from regbatch.db.models import Job, JobStep
from regbatch.lease import Lease
from regbatch.statuses import STEP_ACTIVE, JobStatus, StepStatus, allowed_from, can_transition
from regbatch.steps import StepKey, step
from tests.factories import make_restaurants

J, S = JobStatus, StepStatus
Rows = dict[tuple[str, uuid.UUID, int], str]  # (level, job id, step number or 0) -> status


def _batch(org_id: uuid.UUID, jobs: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, jobs)
        batch = batches.create_batch(
            session, organisation_id=org_id, name="transitions", restaurant_ids=ids
        )
        job_ids = list(session.scalars(select(Job.id).where(Job.batch_id == batch.id)))
        return batch.id, job_ids


def _set(job_id: uuid.UUID, job_status: JobStatus, step_statuses: dict[int, StepStatus]) -> None:
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=job_status))
        # the counters every real change of a job's status keeps
        batch_id = session.scalars(select(Job.batch_id).where(Job.id == job_id)).one()
        batches.recompute_counters(session, batch_id)
        for number, status in step_statuses.items():
            session.execute(
                update(JobStep)
                .where(JobStep.job_id == job_id, JobStep.step_number == number)
                .values(status=status)
            )


def _every_step_status(job_id: uuid.UUID, job_status: JobStatus) -> None:
    """The job's twelve steps cycle through every step status."""
    statuses = cycle(StepStatus)
    _set(job_id, job_status, {number: next(statuses) for number in range(1, 13)})


def _rows(batch_id: uuid.UUID) -> Rows:
    with session_scope() as session:
        jobs = session.execute(select(Job.id, Job.status).where(Job.batch_id == batch_id))
        found: Rows = {("job", job_id, 0): status for job_id, status in jobs}
        steps = session.execute(
            select(JobStep.job_id, JobStep.step_number, JobStep.status)
            .join(Job, Job.id == JobStep.job_id)
            .where(Job.batch_id == batch_id)
        )
        found |= {("step", job_id, number): status for job_id, number, status in steps}
        return found


def _assert_only_allowed_moves(before: Rows, after: Rows) -> Rows:
    """Every row kept its status or made an allowed move; returns the rows that moved."""
    moved = {}
    for row, old in before.items():
        new = after[row]
        if new != old:
            assert can_transition(row[0], old, new), f"{row}: {old} -> {new} is forbidden"
            moved[row] = new
    return moved


def test_cancel_now_cancels_exactly_what_the_rule_lets_become_cancelled(org_id: uuid.UUID) -> None:
    batch_id, job_ids = _batch(org_id, len(JobStatus))
    for job_id, status in zip(job_ids, JobStatus, strict=True):
        _every_step_status(job_id, status)
    before = _rows(batch_id)
    with session_scope() as session:
        lifecycle.cancel_now(session, batch_id, "user")
    moved = _assert_only_allowed_moves(before, _rows(batch_id))
    unfinished = {
        job
        for (level, job, _), s in before.items()
        if level == "job" and s in allowed_from("job", J.CANCELLED)
    }
    assert unfinished == {
        job
        for job, status in zip(job_ids, JobStatus, strict=True)
        if status in (J.PENDING, J.IN_PROGRESS)
    }
    assert moved == {
        row: J.CANCELLED
        for row, status in before.items()
        if row[1] in unfinished and status in allowed_from(row[0], J.CANCELLED)
    }


def test_holding_unfinished_jobs_moves_only_active_steps_of_running_jobs(
    org_id: uuid.UUID,
) -> None:
    batch_id, job_ids = _batch(org_id, len(JobStatus))
    for job_id, status in zip(job_ids, JobStatus, strict=True):
        _every_step_status(job_id, status)
    before = _rows(batch_id)
    with session_scope() as session:
        lifecycle.hold_unfinished_jobs(session, batch_id, "system:recovery")
    moved = _assert_only_allowed_moves(before, _rows(batch_id))
    running = {
        job for (level, job, _), s in before.items() if level == "job" and s == J.IN_PROGRESS
    }
    assert moved == {
        row: S.PENDING
        for row, status in before.items()
        if row[1] in running and (row[0] == "job" or status in STEP_ACTIVE)
    }


def _running(org_id: uuid.UUID, jobs: int) -> tuple[uuid.UUID, list[uuid.UUID], Lease]:
    batch_id, job_ids = _batch(org_id, jobs)
    with session_scope() as session:
        lease = lifecycle.begin_run(session, batch_id, "tests", lease_seconds=60).lease
    assert lease is not None
    return batch_id, job_ids, lease


def test_begin_job_resets_failed_blocked_and_active_steps_and_nothing_else(
    org_id: uuid.UUID,
) -> None:
    batch_id, [job_id], lease = _running(org_id, 1)
    account, restaurant = step(StepKey.ACCOUNT_REGISTRATION), step(StepKey.RESTAURANT_REGISTRATION)
    _every_step_status(job_id, J.FAILED)
    _set(job_id, J.FAILED, {account.number: S.FAILED, restaurant.number: S.SKIPPED})
    with session_scope() as session:
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == job_id, JobStep.step_number == restaurant.number)
            .values(blocked_by_step=account.number, skip_reason="blocked", error_message="x")
        )
    before = _rows(batch_id)
    with session_scope() as session:
        plan = ledger.begin_job(session, lease, job_id)
    moved = _assert_only_allowed_moves(before, _rows(batch_id))
    rerun = {
        n
        for (level, _, n), s in before.items()
        if level == "step" and s in STEP_ACTIVE | {S.FAILED}
    }
    assert moved == {
        ("job", job_id, 0): J.IN_PROGRESS,
        **{("step", job_id, n): S.PENDING for n in rerun | {restaurant.number}},
    }
    reset = plan.states[StepKey.RESTAURANT_REGISTRATION]
    assert reset.status == S.PENDING and reset.blocked_by is None


def test_pausing_and_cancelling_a_job_move_only_its_unfinished_steps(org_id: uuid.UUID) -> None:
    batch_id, [held, cancelled], lease = _running(org_id, 2)
    _every_step_status(held, J.IN_PROGRESS)
    _every_step_status(cancelled, J.IN_PROGRESS)
    before = _rows(batch_id)
    with session_scope() as session:
        ledger.hold_job(session, lease, held)
        ledger.cancel_job(session, lease, cancelled)
    moved = _assert_only_allowed_moves(before, _rows(batch_id))
    assert moved == {
        ("job", held, 0): J.PENDING,
        ("job", cancelled, 0): J.CANCELLED,
        **{
            ("step", held, n): S.PENDING
            for (level, job, n), s in before.items()
            if level == "step" and job == held and s in STEP_ACTIVE
        },
        **{
            ("step", cancelled, n): S.CANCELLED
            for (level, job, n), s in before.items()
            if level == "step" and job == cancelled and s in STEP_ACTIVE | {S.PENDING}
        },
    }
