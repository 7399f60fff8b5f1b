"""The step ledger's hot statements, built once per SQL dialect and run with parameters.

Every step attempt runs these (its start, its outcome, what the attempt reads); building a
SQLAlchemy statement anew costs about three times the CPU of running a built one (bench:
`bench/README.md`, "Against Prefect's floor (2026-11-30)", the ledger's hot path). Each move
of a step row is one UPDATE that matches only the statuses the state machine
(regbatch.statuses) allows it from, so the state machine stays the one place for transitions;
parameters are named `p_*` (a name may not repeat a column's in an UPDATE's SET clause).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    Table,
    Update,
    bindparam,
    case,
    cast,
    func,
    null,
    select,
    update,
)

from regbatch.db.fencing import fenced
from regbatch.db.models import Job, JobStep, Restaurant
from regbatch.db.types import UTCDateTime
from regbatch.statuses import STEP_FINISHED, StepStatus, allowed_from

STEP_ROWS: Table = JobStep.__table__  # type: ignore[assignment]
JOBS: Table = Job.__table__  # type: ignore[assignment]

# Statuses a repeated outcome finds its row in: the same write, landed before a dropped
# connection hid its commit. Such a row is left as it is.
REPEATED = {
    StepStatus.IN_PROGRESS: frozenset[str](),
    StepStatus.COMPLETED: frozenset({StepStatus.COMPLETED}),
    StepStatus.RETRYING: frozenset({StepStatus.RETRYING}),
    StepStatus.FAILED: STEP_FINISHED,
}


@dataclass(frozen=True)
class StepStatements:
    # a step row's move to each status, by that status (all take p_job, p_key, p_now):
    #   in_progress -> step_number, handler, attempts; completed (p_result) -> attempts;
    #   retrying, failed (p_message, p_details) -> attempts
    moves: dict[StepStatus, Update]
    # the same moves, matching only while the lease holds (db/fencing.py `fenced`): a step's
    # moves run these first, then the plain ones only to explain a move that matched nothing
    fenced: dict[StepStatus, Update]
    point_job: Update  # p_job, p_batch, p_step -> organisation_id, restaurant_id, idempotency_root
    password: Select[Any]  # p_restaurant -> account_password_encrypted
    status: Select[Any]  # p_job, p_key -> status
    job_steps: Select[Any]  # p_job -> what planning and a job's end read of its steps, in order
    results: Select[Any]  # the same rows, unordered: step_key, status, result_data (a step's start)


def _now() -> Any:
    return bindparam("p_now", type_=UTCDateTime())


def _move(target: StepStatus, **values: Any) -> Update:
    sources = sorted(allowed_from("step", target) - REPEATED[target])
    return (
        update(STEP_ROWS)
        .where(
            STEP_ROWS.c.job_id == bindparam("p_job"),
            STEP_ROWS.c.step_key == bindparam("p_key"),
            STEP_ROWS.c.status.in_(sources),
        )
        .values(status=target, updated_at=_now(), **values)
    )


def _elapsed_ms(dialect: str) -> Any:
    """Milliseconds from the row's start to p_now, computed by the database."""
    at = func.coalesce(STEP_ROWS.c.started_at, _now())
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", _now() - at) * 1000), BigInteger)
    # SQLite keeps timestamps as text; julianday() reads them as days
    return cast(func.floor((func.julianday(_now()) - func.julianday(at)) * 86_400_000), BigInteger)


def _moves(dialect: str) -> dict[StepStatus, Update]:
    """A step row's four moves (the plain ones), by the status each moves it to."""
    error: dict[str, Any] = {
        "error_message": bindparam("p_message"),
        "error_details": bindparam("p_details"),
    }
    return {
        StepStatus.IN_PROGRESS: _move(
            StepStatus.IN_PROGRESS,
            attempts=STEP_ROWS.c.attempts + 1,
            started_at=case(
                (STEP_ROWS.c.status == StepStatus.PENDING, _now()),
                else_=func.coalesce(STEP_ROWS.c.started_at, _now()),
            ),
        ).returning(STEP_ROWS.c.step_number, STEP_ROWS.c.handler, STEP_ROWS.c.attempts),
        StepStatus.COMPLETED: _move(
            StepStatus.COMPLETED,
            result_data=bindparam("p_result"),
            completed_at=_now(),
            duration_ms=_elapsed_ms(dialect),
            error_message=None,
            error_details=null(),  # SQL NULL, not JSON null: readers then decode nothing
        ).returning(STEP_ROWS.c.attempts),
        StepStatus.RETRYING: _move(StepStatus.RETRYING, **error).returning(STEP_ROWS.c.attempts),
        StepStatus.FAILED: _move(StepStatus.FAILED, completed_at=_now(), **error).returning(
            STEP_ROWS.c.attempts
        ),
    }


@lru_cache(maxsize=4)
def step_statements(dialect: str) -> StepStatements:
    """The statements for `dialect` ('postgresql' or 'sqlite'), built on first use."""
    moves = _moves(dialect)
    # By the job alone, through the (job_id, step_number) index; a step's start keeps the
    # completed ones' results. With `status = 'completed'` in that read, PostgreSQL planned a
    # scan of the status index whenever its statistics predated the batch's progress (they
    # are refreshed when a big batch is made, all of its steps pending): every completed step
    # of every batch, 44 ms per step's start at 6,000 of 10,000 restaurants (bench/README,
    # "10,000 restaurants, fifth run").
    job_steps = (
        select(
            STEP_ROWS.c.step_number,
            STEP_ROWS.c.step_key,
            STEP_ROWS.c.status,
            STEP_ROWS.c.result_data,
            STEP_ROWS.c.blocked_by_step,
            STEP_ROWS.c.error_message,
            STEP_ROWS.c.error_details,
        )
        .where(STEP_ROWS.c.job_id == bindparam("p_job"))
        .order_by(STEP_ROWS.c.step_number)
    )
    return StepStatements(
        moves=moves,
        fenced={
            target: fenced(move, to_start=target is StepStatus.IN_PROGRESS)
            for target, move in moves.items()
        },
        point_job=update(JOBS)
        .where(JOBS.c.id == bindparam("p_job"), JOBS.c.batch_id == bindparam("p_batch"))
        .values(current_step=bindparam("p_step"))
        .returning(JOBS.c.organisation_id, JOBS.c.restaurant_id, JOBS.c.idempotency_root),
        password=select(Restaurant.account_password_encrypted).where(
            Restaurant.id == bindparam("p_restaurant")
        ),
        status=select(STEP_ROWS.c.status).where(
            STEP_ROWS.c.job_id == bindparam("p_job"), STEP_ROWS.c.step_key == bindparam("p_key")
        ),
        job_steps=job_steps,
        results=job_steps.with_only_columns(
            STEP_ROWS.c.step_key, STEP_ROWS.c.status, STEP_ROWS.c.result_data
        ).order_by(None),
    )
