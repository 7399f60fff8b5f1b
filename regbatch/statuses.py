"""Status vocabularies of batches, jobs and steps, and the transitions allowed between them.

The enums are the single source of the CHECK constraints in the database (see db/models.py);
a test compares them with the migrated schema. Transitions are data: `TRANSITIONS[level][from]`
is the set of statuses a row may move to. `check_transition` enforces it for one row;
`allowed_from` gives the statuses a bulk UPDATE may move (`WHERE status IN allowed_from(...)`),
so a row the rule forbids is never moved, one at a time or many at once.
"""

from __future__ import annotations

from enum import StrEnum

from regbatch.errors import InvalidTransitionError


class _Vocabulary(StrEnum):
    """Members are their strings everywhere: str(), format() and repr() (a message quotes
    'paused' whether it holds a member or a string)."""

    def __repr__(self) -> str:
        return repr(self.value)


class BatchStatus(_Vocabulary):
    DRAFT = "draft"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStatus(_Vocabulary):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class StepStatus(_Vocabulary):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ExecutionMode(_Vocabulary):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    DISTRIBUTED = "distributed"


class RequestedAction(_Vocabulary):
    """What a user asked a running batch to do at its next step boundary."""

    PAUSE = "pause"
    CANCEL = "cancel"


BATCH_FINISHED = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED})
JOB_FINISHED = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED}
)
STEP_FINISHED = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)
STEP_ACTIVE = frozenset({StepStatus.IN_PROGRESS, StepStatus.RETRYING})
# Nothing runs the batch until someone acts: it finished, or it is paused.
BATCH_AT_REST = BATCH_FINISHED | {BatchStatus.PAUSED}

_B, _J, _S = BatchStatus, JobStatus, StepStatus

TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    "batch": {
        _B.DRAFT: frozenset({_B.PENDING, _B.IN_PROGRESS, _B.CANCELLED}),
        # pending -> draft/paused: a start whose submission to Prefect failed is undone and
        # the batch is what it was before (services/starts.py); nothing had run it.
        _B.PENDING: frozenset({_B.IN_PROGRESS, _B.CANCELLED, _B.DRAFT, _B.PAUSED}),
        # in_progress -> pending: a runner gave the batch back (orchestration trouble, shutdown).
        _B.IN_PROGRESS: frozenset({_B.PAUSED, _B.COMPLETED, _B.FAILED, _B.CANCELLED, _B.PENDING}),
        _B.PAUSED: frozenset({_B.PENDING, _B.IN_PROGRESS, _B.CANCELLED}),
        _B.COMPLETED: frozenset(),
        _B.FAILED: frozenset(),
        _B.CANCELLED: frozenset(),
    },
    "job": {
        # pending -> failed: the job's restaurant no longer passes pre-flight at run time.
        _J.PENDING: frozenset({_J.IN_PROGRESS, _J.CANCELLED, _J.SKIPPED, _J.FAILED}),
        # in_progress -> pending: paused mid-way; it continues from its finished steps.
        _J.IN_PROGRESS: frozenset({_J.COMPLETED, _J.FAILED, _J.CANCELLED, _J.PENDING}),
        # failed -> in_progress: running the job again re-runs exactly its failed steps.
        _J.FAILED: frozenset({_J.IN_PROGRESS}),
        _J.COMPLETED: frozenset(),
        _J.CANCELLED: frozenset(),
        _J.SKIPPED: frozenset(),
    },
    "step": {
        _S.PENDING: frozenset({_S.IN_PROGRESS, _S.SKIPPED, _S.CANCELLED}),
        # in_progress -> in_progress: a new attempt after a crash took the step over.
        _S.IN_PROGRESS: frozenset(
            {_S.IN_PROGRESS, _S.RETRYING, _S.COMPLETED, _S.FAILED, _S.CANCELLED, _S.PENDING}
        ),
        _S.RETRYING: frozenset({_S.IN_PROGRESS, _S.FAILED, _S.CANCELLED, _S.PENDING}),
        # failed/skipped -> pending: reset by a re-run of the job or a retry batch.
        _S.FAILED: frozenset({_S.PENDING}),
        _S.SKIPPED: frozenset({_S.PENDING}),
        _S.CANCELLED: frozenset(),
        _S.COMPLETED: frozenset(),
    },
}


def can_transition(level: str, current: str, target: str) -> bool:
    """True when `level` ('batch', 'job' or 'step') allows `current` -> `target`."""
    try:
        allowed = TRANSITIONS[level][current]
    except KeyError:
        raise ValueError(
            f"unknown {level!r} status {current!r}; expected one of "
            f"{sorted(TRANSITIONS.get(level, {}))}"
        ) from None
    return target in allowed


def allowed_from(level: str, target: str) -> frozenset[str]:
    """Every status from which `level` ('batch', 'job' or 'step') allows a move to `target`."""
    try:
        rows = TRANSITIONS[level]
    except KeyError:
        raise ValueError(
            f"unknown level {level!r}; expected one of {sorted(TRANSITIONS)}"
        ) from None
    if target not in rows:
        raise ValueError(f"unknown {level!r} status {target!r}; expected one of {sorted(rows)}")
    return frozenset(current for current, targets in rows.items() if target in targets)


def check_transition(level: str, current: str, target: str, subject: str = "") -> None:
    """Raise InvalidTransitionError unless `level` allows `current` -> `target`."""
    if not can_transition(level, current, target):
        raise InvalidTransitionError(level, current, target, subject)
