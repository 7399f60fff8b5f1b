"""How a batch's status follows from its jobs: the seed's rule, `paused`, and the breaker.

The seed's `calculateBatchStatus` has a gap: a finished batch with some failures below the 50 %
threshold (its own example: 2 completed, 1 failed) falls through to 'pending'. Its example and
DOMAIN.md say 'completed with the failures counted', and that is what `final_status` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from regbatch.errors import Problem, not_one_of
from regbatch.statuses import BATCH_FINISHED, BatchStatus, ExecutionMode, RequestedAction

FAILURE_THRESHOLD = 0.5
# The statuses from which "retry failed" makes a batch of the failed restaurants.
RETRYABLE = (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.PAUSED, BatchStatus.CANCELLED)
# A batch's breaker unless it says otherwise: every interface's default reads these.
BREAKER_THRESHOLD = 0.5
BREAKER_MIN_FINISHED = 3
MAX_CONCURRENCY = 200
"""The most restaurants one batch runs at once, whoever asks."""


@dataclass(frozen=True)
class JobCounts:
    """How many of a batch's jobs are in each state (skipped jobs count as successes)."""

    total: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    in_progress: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled + self.skipped

    @property
    def unfinished(self) -> int:
        return self.total - self.finished


@dataclass(frozen=True)
class BreakerPolicy:
    """Trip when over `threshold` of finished jobs failed, once `min_finished` have finished."""

    threshold: float = BREAKER_THRESHOLD
    min_finished: int = BREAKER_MIN_FINISHED
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ValueError(
                f"breaker threshold {self.threshold} must be between 0 and 1, e.g. 0.5"
            )
        if self.min_finished < 1:
            raise ValueError(f"breaker min_finished {self.min_finished} must be at least 1")


def final_status(counts: JobCounts) -> BatchStatus:
    """The status of a batch whose jobs have all finished (the seed's rule, its gap filled).

    completed if all jobs completed; failed if all failed or more than half failed; otherwise
    completed with the failures counted. A batch of only cancelled jobs is cancelled.
    """
    if counts.unfinished:
        raise ValueError(
            f"{counts.unfinished} of {counts.total} jobs are unfinished; "
            "final_status applies to finished batches only"
        )
    if counts.total == 0 or counts.cancelled == counts.total:
        return BatchStatus.CANCELLED
    if counts.failed == counts.total:
        return BatchStatus.FAILED
    if counts.failed / counts.total > FAILURE_THRESHOLD:
        return BatchStatus.FAILED
    return BatchStatus.COMPLETED


def current_status(
    counts: JobCounts, *, cancelled: bool = False, paused: bool = False, started: bool = True
) -> BatchStatus:
    """The status a batch shows now: the seed's calculation with `paused` added."""
    if cancelled:
        return BatchStatus.CANCELLED
    if counts.total and counts.unfinished == 0:
        return final_status(counts)
    if paused:
        return BatchStatus.PAUSED
    if started:
        return BatchStatus.IN_PROGRESS
    return BatchStatus.PENDING


def breaker_trips(failed: int, finished: int, policy: BreakerPolicy) -> bool:
    """True when the breaker must stop dispatching: enough finished, and too many of them failed.

    The runner counts both over the breaker's window, the restaurants finished since the batch
    last started or resumed (two counters on the batch's row, db/batches.py `move_counters`).
    """
    if not policy.enabled or finished < policy.min_finished or finished == 0:
        return False
    return failed / finished > policy.threshold


def breaker_reason(failed: int, finished: int, policy: BreakerPolicy) -> str:
    """The pause reason recorded when the breaker trips."""
    return (
        f"breaker tripped: {failed} of {finished} finished restaurants failed "
        f"({failed / finished:.0%} > {policy.threshold:.0%}); resume, cancel or retry the failed"
    )


def option_problems(
    execution_mode: str, concurrency: int, breaker_threshold: float, breaker_min_finished: int
) -> list[Problem]:
    """Every problem with a batch's (or a template's) execution and breaker options."""
    problems = []
    if execution_mode not in set(ExecutionMode):
        problems.append(
            Problem("execution_mode", not_one_of("mode", execution_mode, ExecutionMode))
        )
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(
            Problem("concurrency", f"{concurrency} is out of range; use 1 to {MAX_CONCURRENCY}")
        )
    elif execution_mode == ExecutionMode.SEQUENTIAL and concurrency != 1:
        problems.append(
            Problem(
                "concurrency",
                f"is {concurrency} but sequential mode runs one "
                "restaurant at a time; use parallel mode or concurrency 1",
            )
        )
    if not 0 <= breaker_threshold <= 1:
        problems.append(
            Problem(
                "breaker_threshold",
                f"{breaker_threshold} is not a fraction; use a value from 0 to 1, e.g. 0.5",
            )
        )
    if breaker_min_finished < 1:
        problems.append(
            Problem("breaker_min_finished", f"{breaker_min_finished} is below 1; use at least 1")
        )
    return problems


class BatchAction(StrEnum):
    """What a user can do to a batch."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY_FAILED = "retry-failed"


def allowed_actions(
    status: BatchStatus, requested_action: RequestedAction | None, failed: int
) -> list[BatchAction]:
    """The actions the batch's state allows now, as the lifecycle operations check them.

    Start takes a draft (a paused batch is resumed, which submits it again); pause, a batch in
    progress not already asked to stop; resume, a paused batch or a pending pause request;
    cancel, an unfinished batch not already being cancelled; retry failed, a batch at rest or
    finished with failed restaurants.
    """
    actions = []
    if status == BatchStatus.DRAFT:
        actions.append(BatchAction.START)
    if status == BatchStatus.IN_PROGRESS and requested_action is None:
        actions.append(BatchAction.PAUSE)
    if status == BatchStatus.PAUSED or (
        status == BatchStatus.IN_PROGRESS and requested_action == RequestedAction.PAUSE
    ):
        actions.append(BatchAction.RESUME)
    if status not in BATCH_FINISHED and requested_action != RequestedAction.CANCEL:
        actions.append(BatchAction.CANCEL)
    if status in RETRYABLE and failed > 0:
        actions.append(BatchAction.RETRY_FAILED)
    return actions
