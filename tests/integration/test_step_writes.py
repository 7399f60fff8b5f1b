"""The step ledger's one-statement writes, on PostgreSQL and on SQLite (the embedded default).

An attempt's start and its outcome are each one guarded UPDATE: the step's duration is computed
by the database from the row's own start, a repeated write (after a dropped connection) changes
nothing, a move the state machine forbids is refused naming the step, and a job's start and end
move the batch's counters by one, exactly as counting the job rows would.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from regbatch.db import lifecycle
from regbatch.db import steps as ledger
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep
from regbatch.errors import (
    BatchStoppingError,
    InvalidTransitionError,
    LeaseLostError,
    TransientPlatformError,
)
from regbatch.lease import Lease
from regbatch.ledger import StepInputs
from regbatch.statuses import JobStatus, StepStatus
from regbatch.steps import StepKey
from tests.integration.sql_support import running_batch, sql_sent

ACCOUNT = StepKey.ACCOUNT_REGISTRATION


def _step(url: str | None, job_id: uuid.UUID, key: str) -> JobStep:
    with session_scope(url) as session:
        row = session.scalar(
            select(JobStep).where(JobStep.job_id == job_id, JobStep.step_key == str(key))
        )
        assert row is not None
        session.expunge(row)
        return row


def _first_attempt(url: str | None) -> tuple[uuid.UUID, Lease, StepInputs]:
    """A running batch of one job, begun, its account step's first attempt started."""
    _, [job_id], lease = running_batch(url, 1)
    with session_scope(url) as session:
        ledger.begin_job(session, lease, job_id)
        inputs = ledger.start_attempt(session, lease, job_id, ACCOUNT)
    return job_id, lease, inputs


def test_a_steps_inputs_hold_the_results_of_its_jobs_completed_steps_only(
    url: str | None,
) -> None:
    job_id, lease, _ = _first_attempt(url)
    with session_scope(url) as session:
        ledger.record_completed(session, lease, job_id, ACCOUNT, {"account_id": "a-1"})
    with session_scope(url) as session:  # results left on steps that did not complete
        for key, status in (
            (StepKey.CODE_GENERATION, StepStatus.FAILED),
            (StepKey.IMAGE_UPLOAD, StepStatus.SKIPPED),
            (StepKey.ONBOARDING_USER, StepStatus.PENDING),
        ):
            session.execute(
                update(JobStep)
                .where(JobStep.job_id == job_id, JobStep.step_key == str(key))
                .values(status=status, result_data={"stale": str(key)})
            )
    with session_scope(url) as session:
        inputs = ledger.start_attempt(session, lease, job_id, StepKey.RESTAURANT_REGISTRATION)
    assert inputs.results == {ACCOUNT: {"account_id": "a-1"}}


def test_an_attempt_and_its_outcome_are_recorded_with_the_database_s_duration(
    url: str | None,
) -> None:
    job_id, lease, inputs = _first_attempt(url)
    assert inputs.attempt == 1 and inputs.encrypted_password is not None
    started = _step(url, job_id, ACCOUNT)
    assert started.status == StepStatus.IN_PROGRESS and started.started_at is not None
    with session_scope(url) as session:  # as if the call had taken 1.5 s
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == job_id, JobStep.step_key == str(ACCOUNT))
            .values(started_at=started.started_at - timedelta(milliseconds=1500))
        )
    with session_scope(url) as session:
        ledger.record_completed(session, lease, job_id, ACCOUNT, {"account_id": "a-1"})
    done = _step(url, job_id, ACCOUNT)
    assert done.status == StepStatus.COMPLETED and done.result_data == {"account_id": "a-1"}
    assert done.duration_ms is not None and 1500 <= done.duration_ms < 1500 + 5000
    with session_scope(url) as session:  # no error: SQL NULL, which readers decode for nothing
        assert session.scalar(
            select(JobStep.error_details.is_(None)).where(
                JobStep.job_id == job_id, JobStep.step_key == str(ACCOUNT)
            )
        )
    with session_scope(url) as session:  # the same write again: nothing changes
        ledger.record_completed(session, lease, job_id, ACCOUNT, {"account_id": "other"})
    again = _step(url, job_id, ACCOUNT)
    assert (again.result_data, again.updated_at) == (done.result_data, done.updated_at)


def test_a_retry_keeps_the_first_start_and_counts_the_attempts(url: str | None) -> None:
    job_id, lease, _ = _first_attempt(url)
    first = _step(url, job_id, ACCOUNT).started_at
    error = TransientPlatformError("platform busy", status_code=503)
    with session_scope(url) as session:
        ledger.record_retrying(session, lease, job_id, ACCOUNT, error)
    with session_scope(url) as session:  # repeated: no second log entry, no change
        ledger.record_retrying(session, lease, job_id, ACCOUNT, error)
    retrying = _step(url, job_id, ACCOUNT)
    assert retrying.status == StepStatus.RETRYING and retrying.error_message == "platform busy"
    with session_scope(url) as session:
        assert ledger.start_attempt(session, lease, job_id, ACCOUNT).attempt == 2
    second = _step(url, job_id, ACCOUNT)
    assert second.attempts == 2 and second.started_at == first


def test_a_forbidden_move_is_refused_and_changes_nothing(url: str | None) -> None:
    _, [job_id], lease = running_batch(url, 1)
    with session_scope(url) as session:
        ledger.begin_job(session, lease, job_id)
    refused = pytest.raises(InvalidTransitionError, match="account_registration")
    with refused, session_scope(url) as session:  # pending -> completed skips the attempt
        ledger.record_completed(session, lease, job_id, ACCOUNT, {})
    row = _step(url, job_id, ACCOUNT)
    assert row.status == StepStatus.PENDING and row.result_data is None and row.attempts == 0
    with pytest.raises(InvalidTransitionError), session_scope(url) as session:
        ledger.record_retrying(session, lease, job_id, ACCOUNT, RuntimeError("x"))
    assert _step(url, job_id, ACCOUNT).status == StepStatus.PENDING


def test_a_lost_lease_writes_nothing_and_a_pause_refuses_only_new_attempts(
    url: str | None,
) -> None:
    """The lease is checked inside each step move: after a pause request a running step's
    outcome lands but no attempt starts, and a runner whose batch was taken over moves no row,
    not even one whose status would allow the move."""
    batch_id, [job_id], lease = running_batch(url, 1)
    code, restaurant = StepKey.CODE_GENERATION, StepKey.RESTAURANT_REGISTRATION
    with session_scope(url) as session:
        ledger.begin_job(session, lease, job_id)
        ledger.start_attempt(session, lease, job_id, ACCOUNT)
        ledger.start_attempt(session, lease, job_id, code)
    with session_scope(url) as session:  # asked while both steps run
        lifecycle.request_pause(session, batch_id, "tests")
    with pytest.raises(BatchStoppingError), session_scope(url) as session:
        ledger.start_attempt(session, lease, job_id, restaurant)
    assert _step(url, job_id, restaurant).status == StepStatus.PENDING
    with session_scope(url) as session:
        ledger.record_completed(session, lease, job_id, ACCOUNT, {"account_id": "a-1"})
    assert _step(url, job_id, ACCOUNT).status == StepStatus.COMPLETED
    with session_scope(url) as session:  # another runner takes the batch over
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(lease_token=Batch.lease_token + 1, lease_owner="the next runner")
        )
    for write in (
        lambda session: ledger.record_completed(session, lease, job_id, code, {"code": "c"}),
        lambda session: ledger.record_retrying(session, lease, job_id, code, RuntimeError("x")),
        lambda session: ledger.record_failed(session, lease, job_id, code, RuntimeError("x")),
    ):
        with pytest.raises(LeaseLostError, match="the next runner"), session_scope(url) as s:
            write(s)
    row = _step(url, job_id, code)
    assert row.status == StepStatus.IN_PROGRESS and row.result_data is None


def _verbs(statements: list[str]) -> list[str]:
    """Each statement's first word, without SQLite's BEGIN IMMEDIATE (db/engine.py), which
    opens each of its transactions."""
    verbs = [statement.split(None, 1)[0].upper() for statement in statements]
    return [verb for verb in verbs if verb != "BEGIN"]


def test_an_attempt_and_its_outcome_check_the_lease_in_their_own_update(url: str | None) -> None:
    """When all is well a step's move is one statement after the batch's lock (no lease read of
    its own): the start also points the job at the step and reads the results it needs."""
    _, [job_id], lease = running_batch(url, 1)
    code = StepKey.CODE_GENERATION
    with session_scope(url) as session:
        ledger.begin_job(session, lease, job_id)
    with sql_sent(url) as sent:
        with session_scope(url) as session:
            ledger.start_attempt(session, lease, job_id, code)
        started = _verbs(sent)
        sent.clear()
        with session_scope(url) as session:
            ledger.record_completed(session, lease, job_id, code, {"code": "c"})
    lock = ["SELECT"] if url is None else []  # PostgreSQL's advisory lock; SQLite locks the file
    assert started == [*lock, "UPDATE", "UPDATE", "SELECT"], started
    assert _verbs(sent) == [*lock, "UPDATE"], sent
    assert _step(url, job_id, code).status == StepStatus.COMPLETED


def test_jobs_starting_and_ending_move_the_counters_as_counting_the_rows_would(
    url: str | None,
) -> None:
    batch_id, job_ids, lease = running_batch(url, 3)
    for job_id in job_ids:
        with session_scope(url) as session:
            ledger.begin_job(session, lease, job_id)
    ends = [StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELLED]
    for job_id, end in zip(job_ids, ends, strict=True):
        with session_scope(url) as session:
            if end == StepStatus.CANCELLED:
                ledger.cancel_job(session, lease, job_id)
                continue
            session.execute(update(JobStep).where(JobStep.job_id == job_id).values(status=end))
        if end != StepStatus.CANCELLED:
            with session_scope(url) as session:
                ledger.finish_job(session, lease, job_id)
    with session_scope(url) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        counted = dict(
            session.execute(
                select(Job.status, func.count())
                .where(Job.batch_id == batch_id)
                .group_by(Job.status)
            ).all()
        )
        moved = (
            batch.completed_restaurants,
            batch.failed_restaurants,
            batch.cancelled_restaurants,
        )
    assert counted == {JobStatus.COMPLETED: 1, JobStatus.FAILED: 1, JobStatus.CANCELLED: 1}
    assert moved == (1, 1, 1)
