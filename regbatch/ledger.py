"""The ledger: where a runner records what happens to a batch, as one small interface.

Flows decide and tasks act; both reach the batch's state only through a `Ledger`. The
production one is SQL (regbatch/runner/ledger.py: PostgreSQL or the embedded SQLite file, every
write fenced by the runner's lease); the orchestration unit tests use an in-memory one that
enforces the same transition rules. Calls are coarse: a few per restaurant and two per step
attempt, each one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from regbatch.config import RegistrationConfig
from regbatch.lease import Lease
from regbatch.planning import StepState
from regbatch.statuses import BatchStatus, JobStatus, RequestedAction
from regbatch.steps import BUILT_IN, StepGraph
from regbatch.views import BatchReport, BatchView


@dataclass(frozen=True)
class RunStart:
    """What `begin_run` did: the lease to run under, or why there is nothing to run."""

    lease: Lease | None
    status: BatchStatus
    previous_owner: str | None = None
    previous_flow_run_id: uuid.UUID | None = None
    """The flow run of the runner this one took over from (to be marked crashed in Prefect)."""


@dataclass(frozen=True)
class JobRef:
    """A job as the batch flow dispatches it."""

    id: uuid.UUID
    position: int
    status: JobStatus
    restaurant_name: str
    flow_run_id: uuid.UUID | None


@dataclass(frozen=True)
class JobSettled:
    """What the batch runner learns once a dispatched job's run ended."""

    status: JobStatus
    finished: int  # the batch's finished jobs, this one included
    breaker_reason: str | None  # set when this job's end tripped the breaker


@dataclass(frozen=True)
class JobPlan:
    """What the restaurant subflow needs to drive one job."""

    job_id: uuid.UUID
    batch_id: uuid.UUID
    organisation_id: uuid.UUID
    restaurant_id: uuid.UUID
    restaurant_name: str
    status: JobStatus
    config: RegistrationConfig
    states: dict[str, StepState]
    graph: StepGraph = BUILT_IN
    """The step graph the job's batch was created with."""


@dataclass(frozen=True)
class StepInputs:
    """What one attempt of a step needs: ids, configuration and its dependencies' results."""

    organisation_id: uuid.UUID
    restaurant_id: uuid.UUID
    idempotency_key: str
    attempt: int
    config: RegistrationConfig
    results: dict[str, dict[str, Any]]
    encrypted_password: str | None
    handler: str | None = None
    """The plugin function that runs the step for this restaurant; None: the built-in step."""


@dataclass(frozen=True)
class Completed:
    """A step's attempt succeeded with this result."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Retrying:
    """A step's attempt failed transiently; another attempt follows."""

    error: BaseException


@dataclass(frozen=True)
class Failed:
    """A step failed for good (a permanent answer, retries spent, or its own code's fault)."""

    error: BaseException


Outcome = Completed | Retrying | Failed
Skip = tuple[str, str, str | None]  # (step, reason, the failed step that blocked it)


class Ledger(Protocol):
    """What a runner reads and records. Writes state the runner's `lease` and raise
    LeaseLostError once it is not the batch's lease any more; LedgerUnavailableError when
    the ledger could not be written for as long as a lease lasts."""

    # --- the batch, for its runner ---------------------------------------------------------
    async def stalled_batches(self, organisation: str | None = None) -> list[uuid.UUID]:
        """Batches in progress whose runner's lease has expired (their runner is gone); only
        the organisation's (its name or id; NotFoundError when there is none) when given."""
        ...

    async def previous_run(self, batch_id: uuid.UUID) -> tuple[BatchStatus, uuid.UUID | None]:
        """The batch's status and the flow run that last ran it."""
        ...

    async def begin_run(
        self,
        batch_id: uuid.UUID,
        owner: str,
        actor: str,
        flow_run_id: uuid.UUID | None,
        cancelled_by: str | None = None,
    ) -> RunStart:
        """Take the batch under a new lease (a takeover if its runner's lease expired)."""
        ...

    async def renew_lease(self, lease: Lease) -> bool:
        """Extend the lease; False when it is not this runner's any more."""
        ...

    async def release_lease(self, lease: Lease) -> None: ...

    async def batch_view(self, batch_id: uuid.UUID) -> BatchView:
        """The batch's own row (no jobs)."""
        ...

    async def batch_report(self, batch_id: uuid.UUID) -> BatchReport:
        """The batch as its Prefect artifacts show it: the jobs of its table, with their steps
        (results left out)."""
        ...

    async def unfinished_jobs(self, batch_id: uuid.UUID) -> list[JobRef]:
        """The batch's jobs that still have work, in the batch's order."""
        ...

    async def requested_action(self, lease: Lease) -> RequestedAction | None:
        """The pause or cancel asked of the batch, if any."""
        ...

    async def request_pause(self, lease: Lease, reason: str) -> None:
        """The runner asks its own batch to pause (it cannot go on), with the reason."""
        ...

    async def request_cancel(self, lease: Lease, actor: str) -> None:
        """Cancel the runner's own batch at its next step boundary, on `actor`'s behalf."""
        ...

    async def mark_dispatched(self, lease: Lease, job_id: uuid.UUID) -> None: ...

    async def remember_flow_run(
        self, lease: Lease, job_id: uuid.UUID, flow_run_id: uuid.UUID
    ) -> None:
        """The flow run that runs the job elsewhere (distributed mode)."""
        ...

    async def settle_job(self, lease: Lease, job_id: uuid.UUID, may_trip: bool) -> JobSettled:
        """A dispatched job's run ended: its status, the finished count, the breaker."""
        ...

    async def finish_run(self, lease: Lease) -> BatchReport:
        """The runner is done: the batch ends completed or failed, paused, or cancelled."""
        ...

    # --- a job, for its restaurant's subflow -----------------------------------------------
    async def begin_job(self, lease: Lease, job_id: uuid.UUID) -> JobPlan:
        """Make the job runnable (resetting what a previous owner left unfinished)."""
        ...

    async def record_skips(self, lease: Lease, job_id: uuid.UUID, skips: list[Skip]) -> None:
        """These steps will not run, with their reasons."""
        ...

    async def finish_job(self, lease: Lease, job_id: uuid.UUID) -> JobStatus:
        """End the job from its steps' outcomes (completed or failed)."""
        ...

    async def hold_job(self, lease: Lease, job_id: uuid.UUID) -> None:
        """Pause: the job goes back to pending, keeping its finished steps."""
        ...

    async def cancel_job(self, lease: Lease, job_id: uuid.UUID) -> bool:
        """Cancel the job's unfinished steps and the job; False if it had finished."""
        ...

    # --- a step, for its task --------------------------------------------------------------
    async def start_attempt(self, lease: Lease, job_id: uuid.UUID, key: str) -> StepInputs:
        """Record a new attempt; BatchStoppingError once a pause or cancel was asked."""
        ...

    async def record_outcome(
        self, lease: Lease, job_id: uuid.UUID, key: str, outcome: Outcome
    ) -> None:
        """Record how the attempt ended: completed, retrying or failed."""
        ...
