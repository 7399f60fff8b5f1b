"""Every error regbatch raises on purpose, under one root.

    RegbatchError
    ├── ConfigurationError          a setting is missing or malformed
    │   └── PluginError             plugins conflict, or a batch's step handler is missing
    ├── DatabaseUnavailableError    the configured database cannot be reached
    │   └── LedgerUnavailableError  a runner could not write for longer than its lease
    ├── PrefectUnavailableError     the Prefect API cannot be reached or refused a request
    ├── InvalidInputError           user input is wrong; carries every problem found
    ├── NotFoundError               no such object (in the caller's organisation)
    ├── ConflictError               the object's state does not allow the action
    │   ├── InvalidTransitionError  a status change the rules forbid
    │   ├── LeaseHeldError          another runner holds the batch's lease
    │   ├── LeaseLostError          this runner's lease was taken over: it is fenced off
    │   └── BatchStoppingError      a step would start after a pause or cancel was asked
    ├── StepCodeError               a step's own code failed (not the platform): recorded failed
    └── PlatformError               a registration platform call failed
        ├── TransientPlatformError  worth retrying (connection, timeout, 408, 429, 5xx)
        │   └── RateLimitedError    429, with the platform's Retry-After
        └── PermanentPlatformError  retrying cannot help (other 4xx, success: false)

Messages name the thing, the value and what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class RegbatchError(Exception):
    """Raised for every failure regbatch reports on purpose."""


class ConfigurationError(RegbatchError):
    """Raised when a REGBATCH_* setting is missing or malformed."""


class PluginError(ConfigurationError):
    """Raised when plugins conflict or declare an invalid step or handler, or when a batch's
    recorded step handler is not installed where it runs."""


class DatabaseUnavailableError(RegbatchError):
    """Raised when the database named by REGBATCH_DATABASE_URL cannot be reached."""


class LedgerUnavailableError(DatabaseUnavailableError):
    """Raised when a runner could not write its ledger for longer than its lease.

    The runner stops; the batch stays in progress and the next runner takes it over once the
    lease has expired, resuming from what was recorded.
    """


class PrefectUnavailableError(RegbatchError):
    """Raised when the Prefect API cannot be reached, or refused a request it should take."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and how to fix it."""

    field: str
    message: str
    subject: str | None = None  # e.g. the restaurant id or the row number

    def __str__(self) -> str:
        where = f"{self.subject}: " if self.subject else ""
        return f"{where}{self.field}: {self.message}"


def not_one_of(what: str, value: object, choices: Iterable[str]) -> str:
    """ "mode 'bogus' is not one of: sequential, parallel, distributed; choose one of them"."""
    return f"{what} {str(value)!r} is not one of: {', '.join(choices)}; choose one of them"


class InvalidInputError(RegbatchError):
    """Raised when user input is rejected; `problems` lists every problem, not just the first."""

    def __init__(self, summary: str, problems: list[Problem] | None = None) -> None:
        self.summary = summary
        self.problems = list(problems or [])
        lines = [summary, *(f"  - {p}" for p in self.problems)]
        super().__init__("\n".join(lines))


class NotFoundError(RegbatchError):
    """Raised when an object does not exist, or belongs to another organisation."""


class ConflictError(RegbatchError):
    """Raised when an object's current state does not allow the requested action."""


class InvalidTransitionError(ConflictError):
    """Raised when a status change is not in the allowed transitions of its level."""

    def __init__(self, level: str, current: str, target: str, subject: str = "") -> None:
        self.level, self.current, self.target = level, current, target
        # subjects may already start with the level ("step account_registration")
        what = subject if subject.startswith(f"{level} ") else f"{level} {subject}".strip()
        super().__init__(
            f"{what} is {current!r} and cannot become {target!r}; "
            f"check its status first (allowed from {current!r}: see regbatch.statuses)"
        )


class LeaseHeldError(ConflictError):
    """Raised when a batch is already being run by a live runner (its lease has not expired)."""


class LeaseLostError(ConflictError):
    """Raised when a runner writes under a lease that was taken over (a stale fencing token).

    The write is refused and the runner must stop all of its work on the batch at once: the new
    owner resumes it.
    """


class BatchStoppingError(ConflictError):
    """Raised when a step would start after its batch was asked to pause or cancel.

    Nothing was recorded and the platform was not called; the step stays unstarted.
    """


class StepCodeError(RegbatchError):
    """Raised when a step's own code failed (a fault of ours, not an answer of the platform).

    The step is recorded failed with the error's type and first line; retrying cannot help.
    """


@dataclass(eq=False)
class PlatformError(RegbatchError):
    """Raised when a registration platform call fails; `details` is safe to store and show."""

    message: str
    status_code: int | None = None
    code: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    transient = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TransientPlatformError(PlatformError):
    """Raised on a failure that may succeed when retried: connection error, timeout, 408, 5xx."""

    transient = True


@dataclass(eq=False)
class RateLimitedError(TransientPlatformError):
    """Raised on 429; `retry_after` is the platform's Retry-After in seconds."""

    retry_after: float = 1.0


class PermanentPlatformError(PlatformError):
    """Raised on a failure retrying cannot fix: a 4xx other than 408/429, or `success: false`."""
