"""The step ledger: every attempt of every step, as it happens.

A step row is the truth about a step: `in_progress` with its attempt number while a call is out,
`retrying` with the previous error, then `completed` with `result_data` and `duration_ms`, or
`failed` with the error, or `skipped` with the reason. Later steps read the `result_data` of their
dependencies from here, so they can run in a later process than the steps they depend on.

Every write states the runner's lease (db/fencing.py): a runner that lost its batch changes
nothing. Writes are safe to repeat (a transaction retried after a dropped connection whose commit
did land finds its own result and leaves it), and only answers of the platform are outcomes: a
step is `failed` by a permanent answer, by transient answers past its retries (no answer
within the step's timeout is one) or by a fault in its own code, never by a cancellation or a
database error.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Row, Update, bindparam, null, select, update
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.config import RegistrationConfig
from regbatch.db.fencing import LockMode, fenced_move, hold, hold_to_start
from regbatch.db.jobs import JOB_ROW, set_job_status
from regbatch.db.models import Batch, Job, Restaurant
from regbatch.db.oplog import append_log
from regbatch.db.step_statements import REPEATED, STEP_ROWS, step_statements
from regbatch.db.types import utcnow
from regbatch.errors import NotFoundError, PlatformError
from regbatch.lease import Lease
from regbatch.ledger import JobPlan, StepInputs
from regbatch.planning import StepState, job_outcome, steps_to_rerun
from regbatch.plugins import current_registry, graph_from_record
from regbatch.statuses import (
    JOB_FINISHED,
    STEP_ACTIVE,
    STEP_FINISHED,
    JobStatus,
    RequestedAction,
    StepStatus,
    allowed_from,
    check_transition,
)
from regbatch.steps import StepKey, as_key, step_label


def _steps(session: Session, job_id: uuid.UUID) -> list[Row[Any]]:
    """The job's step rows (Core rows: what planning and a job's end need), in step order."""
    statement = step_statements(session.connection().dialect.name).job_steps
    return list(session.connection().execute(statement, {"p_job": job_id}))


def _states(rows: list[Row[Any]]) -> dict[str, StepState]:
    """The planning states of a job's step rows, by step key."""
    keys = {row.step_number: as_key(row.step_key) for row in rows}
    return {
        as_key(row.step_key): StepState(
            StepStatus(row.status),
            row.result_data,
            keys.get(row.blocked_by_step) if row.blocked_by_step else None,
        )
        for row in rows
    }


def _job(session: Session, job_id: uuid.UUID, lease: Lease | None = None) -> Row[Any]:
    """The job's JOB_ROW (in the lease's batch, when given); NotFoundError otherwise."""
    job = session.connection().execute(JOB_ROW, {"p_job": job_id}).one_or_none()
    if job is None or (lease is not None and job.batch_id != lease.batch_id):
        where = f" in batch {lease.batch_id}" if lease is not None else ""
        raise NotFoundError(
            f"job {job_id} does not exist{where}; see the batch's jobs with "
            "`regbatch batch show BATCH_ID`"
        )
    return job


def load_plan(session: Session, job_id: uuid.UUID) -> JobPlan:
    """The job, its configuration, its batch's step graph and the state of its steps."""
    return _plan(session, _job(session, job_id), _steps(session, job_id))


def _plan(
    session: Session, job: Row[Any], rows: list[Row[Any]], status: JobStatus | None = None
) -> JobPlan:
    """The plan of `job` (a JOB_ROW) with its step rows; `status` when it has just changed."""
    name_of = select(Restaurant.name).where(Restaurant.id == job.restaurant_id)
    record, name = (
        session.connection()
        .execute(
            select(Batch.step_graph, name_of.scalar_subquery()).where(Batch.id == job.batch_id)
        )
        .one()
    )
    return JobPlan(
        job_id=job.id,
        batch_id=job.batch_id,
        organisation_id=job.organisation_id,
        restaurant_id=job.restaurant_id,
        restaurant_name=name or str(job.restaurant_id),
        status=JobStatus(status or job.status),
        config=job_config(session, job.id),
        states=_states(rows),
        graph=graph_from_record(record, current_registry()),
    )


def begin_job(session: Session, lease: Lease, job_id: uuid.UUID, actor: str = "system") -> JobPlan:
    """Make the job runnable and return its plan.

    A failed job gets exactly its failed steps (and the steps skipped because of them) back to
    pending; a step a previous owner left unfinished (in progress, retrying) is run again, with
    the same idempotency key. A finished job is returned as it is.
    """
    hold(session, lease)
    job = _job(session, job_id, lease)
    rows = _steps(session, job_id)
    if job.status in JOB_FINISHED and job.status != JobStatus.FAILED:
        return _plan(session, job, rows)
    # Left unfinished by a previous owner (active): run it again. A failed job: its failed steps.
    reset = {row.step_number for row in rows if row.status in STEP_ACTIVE}
    if job.status == JobStatus.FAILED:
        rerun = steps_to_rerun(_states(rows))
        reset |= {row.step_number for row in rows if row.step_key in rerun}
    if reset:
        _reset_steps(session, job_id, reset)
        rows = _steps(session, job_id)
    if job.status != JobStatus.IN_PROGRESS:
        set_job_status(session, job, JobStatus.IN_PROGRESS)
        append_log(
            session,
            organisation_id=job.organisation_id,
            batch_id=job.batch_id,
            job_id=job_id,
            operation=Operation.JOB_STARTED,
            actor=actor,
        )
    return _plan(session, job, rows, JobStatus.IN_PROGRESS)


def _reset_steps(session: Session, job_id: uuid.UUID, numbers: set[int]) -> None:
    """These steps go back to pending, their outcome cleared (attempts and results are kept)."""
    if not numbers:
        return
    table = STEP_ROWS
    session.execute(
        update(table)
        .where(
            table.c.job_id == job_id,
            table.c.step_number.in_(sorted(numbers)),
            table.c.status.in_(sorted(allowed_from("step", StepStatus.PENDING))),
        )
        .values(
            status=StepStatus.PENDING,
            error_message=None,
            error_details=null(),
            skip_reason=None,
            blocked_by_step=None,
            started_at=None,
            completed_at=None,
            duration_ms=None,
            updated_at=utcnow(),
        )
    )


# The configurations of the jobs running now (a job's is read at each attempt's start). A full
# restaurant's configuration is about 40 KB in memory: 4,096 of them held 160 MB of a 10,000-
# restaurant batch's runner. Oldest out first; more than a batch's largest concurrency
# (batch_rules.MAX_CONCURRENCY, 200).
_CONFIGS: dict[uuid.UUID, RegistrationConfig] = {}
_CONFIG_CACHE_SIZE = 256


def job_config(session: Session, job_id: uuid.UUID) -> RegistrationConfig:
    """The job's configuration, parsed once per process (it never changes after creation)."""
    config = _CONFIGS.get(job_id)
    if config is None:
        raw = session.scalar(select(Job.execution_config).where(Job.id == job_id))
        if raw is None:
            raise NotFoundError(f"job {job_id} does not exist")
        config = RegistrationConfig.model_validate(raw)
        if len(_CONFIGS) >= _CONFIG_CACHE_SIZE:
            _CONFIGS.pop(next(iter(_CONFIGS)))
        _CONFIGS[job_id] = config
    return config


def _update_step(session: Session, job_id: uuid.UUID, key: str, **values: Any) -> None:
    # A Core UPDATE on the table: the ORM's bulk-update path costs several times more CPU, and
    # no ORM object of a step row is held across these short transactions.
    table = STEP_ROWS
    session.execute(
        update(table)
        .where(table.c.job_id == job_id, table.c.step_key == str(key))
        .values(updated_at=utcnow(), **values)
    )


def _job_log(session: Session, job_id: uuid.UUID, operation: Operation, **details: Any) -> None:
    org, batch = session.execute(
        select(Job.organisation_id, Job.batch_id).where(Job.id == job_id)
    ).one()
    append_log(
        session,
        organisation_id=org,
        batch_id=batch,
        job_id=job_id,
        operation=operation,
        actor="system",
        details=details,
    )


def start_attempt(session: Session, lease: Lease, job_id: uuid.UUID, key: str) -> StepInputs:
    """Record a new attempt (`in_progress`, attempt n) and return what the attempt needs.

    Refused (BatchStoppingError) once the batch was asked to pause or cancel: no step starts
    after such a request has been recorded.
    """
    connection = session.connection()
    sql = step_statements(connection.dialect.name)
    current = _move_fenced(session, lease, job_id, key, StepStatus.IN_PROGRESS)
    assert current is not None  # no status counts as a repeat of a new attempt
    job = connection.execute(
        sql.point_job, {"p_job": job_id, "p_batch": lease.batch_id, "p_step": current.step_number}
    ).one()
    results = {
        as_key(step_key): data or {}
        for step_key, status, data in connection.execute(sql.results, {"p_job": job_id})
        if status == StepStatus.COMPLETED
    }
    password = None
    if key == StepKey.ACCOUNT_REGISTRATION or current.handler is not None:
        password = connection.scalar(sql.password, {"p_restaurant": job.restaurant_id})
    return StepInputs(
        organisation_id=job.organisation_id,
        restaurant_id=job.restaurant_id,
        idempotency_key=f"{job.idempotency_root}:{key}",
        attempt=current.attempts,
        config=job_config(session, job_id),
        results=results,
        encrypted_password=password,
        handler=current.handler,
    )


def _move_fenced(
    session: Session,
    lease: Lease,
    job_id: uuid.UUID,
    key: str,
    target: StepStatus,
    **parameters: Any,
) -> Row[Any] | None:
    """Move the step row to `target` under the lease, in one statement when all is well.

    The fenced UPDATE (db/fencing.py) moves the row only while the lease holds and, for a new
    attempt, nothing was asked of the batch. When it matched nothing, the reason is found as
    before: `hold` (or `hold_to_start`) raises for a lost lease or a pause or cancel, then the
    plain move returns None for a repeated write or raises what the state machine says.
    """
    connection = session.connection()
    sql = step_statements(connection.dialect.name)
    where = {"p_job": job_id, "p_key": str(key), "p_now": utcnow(), **parameters}
    row = fenced_move(session, lease, sql.fenced[target], where)
    if row is not None:
        return row
    if target is StepStatus.IN_PROGRESS:
        hold_to_start(session, lease)
    else:
        hold(session, lease)
    return _move_step(connection, sql.moves[target], job_id, key, target, **parameters)


def _move_step(
    connection: Connection,
    statement: Update,
    job_id: uuid.UUID,
    key: str,
    target: StepStatus,
    **parameters: Any,
) -> Row[Any] | None:
    """Move the step row to `target` with one of `step_statements`' UPDATEs, which only match a
    status the state machine allows; returns its RETURNING columns after the move.

    None when the row already is in a status that means this very write landed before (after a
    dropped connection); InvalidTransitionError, from the one state machine, for any other
    status; NotFoundError when the job has no such step.
    """
    where = {"p_job": job_id, "p_key": str(key)}
    row = connection.execute(statement, {**where, "p_now": utcnow(), **parameters}).one_or_none()
    if row is not None:
        return row
    status = connection.scalar(step_statements(connection.dialect.name).status, where)
    if status is None:
        raise NotFoundError(f"job {job_id} has no step {key}")
    if status in REPEATED[target]:
        return None
    check_transition("step", status, target, f"step {key}")
    raise RuntimeError(f"step {key} of job {job_id} changed while it was being moved to {target}")


def error_record(error: BaseException) -> tuple[str, dict[str, Any]]:
    """The message and details stored for an error: never the request, a secret or SQL."""
    if isinstance(error, PlatformError):
        return str(error), {
            "status_code": error.status_code,
            "code": error.code,
            "transient": error.transient,
            **error.details,
        }
    # A fault in our own step code (not an answer of the platform, not infrastructure): its
    # type and first line only; the traceback is in the flow run's log.
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    summary = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    return (
        f"internal error ({summary}); see the flow run's log, then retry the failed restaurants",
        {"code": "INTERNAL_ERROR", "transient": False, "type": type(error).__name__},
    )


def record_retrying(
    session: Session, lease: Lease, job_id: uuid.UUID, key: str, error: BaseException
) -> None:
    """The attempt failed transiently and another one will follow."""
    message, details = error_record(error)
    moved = _move_fenced(
        session, lease, job_id, key, StepStatus.RETRYING, p_message=message, p_details=details
    )
    if moved is None:
        return
    _job_log(
        session,
        job_id,
        Operation.STEP_RETRIED,
        step=str(key),
        attempt=moved.attempts,
        error=message,
    )


def record_completed(
    session: Session, lease: Lease, job_id: uuid.UUID, key: str, result: dict[str, Any]
) -> None:
    """The step succeeded; its result is what later steps and resumes read."""
    _move_fenced(session, lease, job_id, key, StepStatus.COMPLETED, p_result=result)


def record_failed(
    session: Session, lease: Lease, job_id: uuid.UUID, key: str, error: BaseException
) -> bool:
    """The step failed for good. Returns False when the row had already finished (idempotent)."""
    message, details = error_record(error)
    moved = _move_fenced(
        session, lease, job_id, key, StepStatus.FAILED, p_message=message, p_details=details
    )
    if moved is None:
        return False
    _job_log(
        session,
        job_id,
        Operation.STEP_FAILED,
        step=str(key),
        attempts=moved.attempts,
        error=message,
    )
    return True


def record_skipped(
    session: Session,
    lease: Lease,
    job_id: uuid.UUID,
    skips: list[tuple[str, str, str | None]],
) -> None:
    """These steps will not run: (step, reason, the failed step that blocked it or None).

    One locked read of the rows and one batched UPDATE, whatever the number of skips.
    """
    if not skips:
        return
    hold(session, lease)
    table = STEP_ROWS
    named = {str(key) for key, _, _ in skips} | {str(b) for _, _, b in skips if b is not None}
    rows = session.execute(
        select(table.c.step_key, table.c.step_number, table.c.status)
        .where(table.c.job_id == job_id, table.c.step_key.in_(sorted(named)))
        .with_for_update()
    ).all()
    numbers = {key: number for key, number, _ in rows}
    current = {number: status for _, number, status in rows}
    for key, _, _ in skips:
        if key not in numbers:
            raise NotFoundError(f"job {job_id} has no step {key}")
    wanted = {numbers[key]: (key, reason, blocked_by) for key, reason, blocked_by in skips}
    for number, (key, _, _) in wanted.items():
        if current[number] != StepStatus.SKIPPED:  # already skipped: a repeated write
            check_transition("step", current[number], StepStatus.SKIPPED, f"step {key}")
    now = utcnow()
    session.execute(
        update(table)
        .where(table.c.job_id == bindparam("b_job"), table.c.step_number == bindparam("b_step"))
        .values(
            status=StepStatus.SKIPPED,
            skip_reason=bindparam("b_reason"),
            blocked_by_step=bindparam("b_blocked_by"),
            updated_at=now,
        ),
        [
            {
                "b_job": job_id,
                "b_step": number,
                "b_reason": reason,
                "b_blocked_by": numbers[blocked_by] if blocked_by else None,
            }
            for number, (_, reason, blocked_by) in wanted.items()
        ],
    )


def finish_job(session: Session, lease: Lease, job_id: uuid.UUID) -> JobStatus:
    """End the job from its steps' outcome (completed or failed), with the batch's counters."""
    hold(session, lease)
    job = _job(session, job_id, lease)
    if job.status in JOB_FINISHED:
        return JobStatus(job.status)  # this very write, repeated after a dropped connection
    rows = _steps(session, job_id)
    outcome = job_outcome(_states(rows))
    if outcome is None:
        unfinished = [r.step_key for r in rows if r.status not in STEP_FINISHED]
        raise RuntimeError(f"job {job_id} cannot finish: steps {unfinished} are unfinished")
    failed = next((r for r in rows if r.status == StepStatus.FAILED), None)
    message = details = None
    if failed is not None:
        message = (
            f"{step_label(failed.step_number, failed.step_key)} failed: {failed.error_message}"
        )
        details = {"step": failed.step_key, **(failed.error_details or {})}
    set_job_status(session, job, outcome, error_message=message, error_details=details)
    operation = {
        JobStatus.COMPLETED: Operation.JOB_COMPLETED,
        JobStatus.FAILED: Operation.JOB_FAILED,
        JobStatus.CANCELLED: Operation.JOB_CANCELLED,
    }[outcome]
    append_log(
        session,
        organisation_id=job.organisation_id,
        batch_id=job.batch_id,
        job_id=job_id,
        operation=operation,
        actor="system",
        details={"error": message} if message else {},
    )
    return outcome


def hold_job(session: Session, lease: Lease, job_id: uuid.UUID) -> None:
    """Pause: the job goes back to pending with its finished steps kept; it resumes from them.

    A step left between attempts (`retrying`) goes back to pending too: nothing stays active.
    """
    hold(session, lease)
    job = _job(session, job_id, lease)
    _settle_active_steps(session, job_id, StepStatus.PENDING)
    if job.status == JobStatus.IN_PROGRESS:
        set_job_status(session, job, JobStatus.PENDING)
        _job_log(session, job_id, Operation.JOB_PAUSED)


def cancel_job(session: Session, lease: Lease, job_id: uuid.UUID, actor: str = "system") -> bool:
    """Cancel the job's unfinished steps and the job itself; False if it had already finished."""
    hold(session, lease)
    job = _job(session, job_id, lease)
    if job.status in JOB_FINISHED:
        return False
    _settle_active_steps(session, job_id, StepStatus.CANCELLED, include_pending=True)
    set_job_status(session, job, JobStatus.CANCELLED)
    append_log(
        session,
        organisation_id=job.organisation_id,
        batch_id=job.batch_id,
        job_id=job_id,
        operation=Operation.JOB_CANCELLED,
        actor=actor,
    )
    return True


def _settle_active_steps(
    session: Session, job_id: uuid.UUID, target: StepStatus, include_pending: bool = False
) -> None:
    """Move the job's unfinished steps to `target` in one UPDATE, as the transitions allow."""
    sources = STEP_ACTIVE | {StepStatus.PENDING} if include_pending else STEP_ACTIVE
    allowed = sorted(sources & allowed_from("step", target))
    values: dict[str, Any] = {"status": target, "updated_at": utcnow()}
    if target == StepStatus.CANCELLED:
        values["completed_at"] = utcnow()
    session.execute(
        update(STEP_ROWS)
        .where(STEP_ROWS.c.job_id == job_id, STEP_ROWS.c.status.in_(allowed))
        .values(**values)
    )


def requested_action(session: Session, lease: Lease) -> RequestedAction | None:
    """What the batch's users asked its runner to do at the next step boundary, if anything.

    Raises LeaseLostError when the runner no longer holds the batch (so it stops at once).
    """
    return hold(session, lease, LockMode.READ).requested_action
