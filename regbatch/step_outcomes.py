"""What an attempt's error means for its step: the one rule both Prefect's retries and the ledger
follow, so the two never disagree.

Only answers of the platform are outcomes. A transient answer is retried while attempts are
left, then fails the step; no answer within the step's timeout and no connection to the
platform count as transient answers (the client, or the step's deadline around a plugin's
handler, raises them as such). A permanent answer fails the step at once; a fault in the step's
own code fails it too (retrying cannot help), a plugin handler's own TimeoutError included.
Everything else (a cancellation, a database or orchestrator error) is not an outcome of the
work: the step stays unfinished and whoever runs the batch next asks the platform again with
the same idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from regbatch.errors import (
    BatchStoppingError,
    LeaseLostError,
    LedgerUnavailableError,
    PlatformError,
    StepCodeError,
)


class AfterError(StrEnum):
    RETRY = "retry"  # recorded `retrying`; Prefect runs the next attempt after its delay
    FAILED = "failed"  # recorded `failed`: the step's outcome
    NOT_STARTED = "not_started"  # refused before it started (pause or cancel asked): no record
    RUNNER_STOPPED = "runner_stopped"  # the runner lost its lease or its ledger: stop everything
    INTERRUPTED = "interrupted"  # not an outcome: the step is left for the next run to finish


def after_error(error: BaseException, attempt: int, attempts: int) -> AfterError:
    """What happens to a step whose attempt `attempt` (1-based, of `attempts`) raised `error`."""
    if isinstance(error, PlatformError):
        if error.transient and attempt < attempts:
            return AfterError.RETRY
        return AfterError.FAILED
    if isinstance(error, StepCodeError):
        return AfterError.FAILED
    if isinstance(error, BatchStoppingError):
        return AfterError.NOT_STARTED
    if isinstance(error, LeaseLostError | LedgerUnavailableError):
        return AfterError.RUNNER_STOPPED
    return AfterError.INTERRUPTED


class Ended(StrEnum):
    """How a step's task ended, as the restaurant's loop sees it (retries are behind it)."""

    COMPLETED = "completed"
    FAILED = "failed"
    NOT_STARTED = "not_started"
    RUNNER_STOPPED = "runner_stopped"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StepEnd:
    """A step task's end: how, with the step's result or the error that ended it."""

    how: Ended
    result: dict[str, Any] | None = None
    error: BaseException | None = None

    @classmethod
    def from_error(cls, error: BaseException) -> StepEnd:
        """The end a task that raised `error` (after its retries) had."""
        # with no attempt left, after_error never answers RETRY: the values are Ended's
        return cls(Ended(after_error(error, attempt=1, attempts=1).value), error=error)
