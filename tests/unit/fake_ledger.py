"""An in-memory `regbatch.ledger.Ledger` for the orchestration unit tests.

It keeps the rules the SQL ledger keeps, so a flow's logic that breaks them fails here too:
every status change goes through `regbatch.statuses.check_transition`; every write states a
lease whose owner and token must be the batch's (else LeaseLostError); no attempt starts once a
pause or cancel was asked (BatchStoppingError); counters come from the job rows. Tests steer it
with `ask`, `take_over` and `fail_writes`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from regbatch.batch_rules import BreakerPolicy, JobCounts, breaker_reason, breaker_trips
from regbatch.batch_rules import final_status as final_batch_status
from regbatch.config import RegistrationConfig
from regbatch.errors import (
    BatchStoppingError,
    LeaseLostError,
    LedgerUnavailableError,
    PlatformError,
)
from regbatch.lease import Lease
from regbatch.ledger import (
    Completed,
    Failed,
    JobPlan,
    JobRef,
    JobSettled,
    Outcome,
    Retrying,
    RunStart,
    Skip,
    StepInputs,
)
from regbatch.planning import StepState, job_outcome, steps_to_rerun
from regbatch.statuses import (
    JOB_FINISHED,
    STEP_ACTIVE,
    STEP_FINISHED,
    BatchStatus,
    JobStatus,
    RequestedAction,
    StepStatus,
    check_transition,
)
from regbatch.steps import BUILT_IN, StepGraph
from regbatch.views import BatchReport, BatchView


@dataclass
class FakeStep:
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    blocked_by: str | None = None

    def move(self, target: StepStatus, what: str) -> None:
        check_transition("step", self.status, target, what)
        self.status = target


@dataclass
class FakeJob:
    id: uuid.UUID
    batch_id: uuid.UUID
    position: int
    name: str
    config: RegistrationConfig
    status: JobStatus = JobStatus.PENDING
    dispatches: int = 0
    flow_run_id: uuid.UUID | None = None
    graph: StepGraph = BUILT_IN
    handlers: dict[str, str] = field(default_factory=dict)
    steps: dict[str, FakeStep] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = {spec.key: FakeStep() for spec in self.graph.steps}
        kind = self.config.restaurant.restaurant_type
        for spec in self.graph.steps:
            ref = self.graph.handler_for(spec.key, kind)
            if ref is not None:
                self.handlers[spec.key] = ref.target

    def move(self, target: JobStatus) -> None:
        check_transition("job", self.status, target, f"job {self.id}")
        self.status = target

    def states(self) -> dict[str, StepState]:
        return {k: StepState(s.status, s.result, s.blocked_by) for k, s in self.steps.items()}


@dataclass
class FakeBatch:
    id: uuid.UUID
    name: str
    policy: BreakerPolicy
    status: BatchStatus = BatchStatus.DRAFT
    owner: str | None = None
    token: int = 0
    requested_action: RequestedAction | None = None
    pause_reason: str | None = None


class FakeLedger:
    """The ledger in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.batches: dict[uuid.UUID, FakeBatch] = {}
        self.jobs: dict[uuid.UUID, FakeJob] = {}
        self.log: list[tuple[str, Any]] = []
        self.writes_fail = False

    # --- set-up and steering ----------------------------------------------------------------
    def add_batch(
        self,
        config: RegistrationConfig,
        count: int,
        policy: BreakerPolicy | None = None,
        graph: StepGraph = BUILT_IN,
    ) -> FakeBatch:
        batch = FakeBatch(uuid.uuid4(), f"batch of {count}", policy or BreakerPolicy())
        self.batches[batch.id] = batch
        for position in range(count):
            name = f"restaurant {position}"
            job = FakeJob(uuid.uuid4(), batch.id, position, name, config, graph=graph)
            self.jobs[job.id] = job
        return batch

    def jobs_of(self, batch_id: uuid.UUID) -> list[FakeJob]:
        return sorted((j for j in self.jobs.values() if j.batch_id == batch_id), key=_position)

    def ask(self, batch_id: uuid.UUID, action: RequestedAction, reason: str = "") -> None:
        """A user asks the running batch to pause or cancel."""
        self.batches[batch_id].requested_action = action
        self.batches[batch_id].pause_reason = reason or None

    def take_over(self, batch_id: uuid.UUID, owner: str = "another runner") -> None:
        """Another runner takes the batch over: every lease held before is stale."""
        batch = self.batches[batch_id]
        batch.owner, batch.token = owner, batch.token + 1

    def fail_writes(self) -> None:
        """The database is gone for longer than a lease: every call fails."""
        self.writes_fail = True

    # --- fencing ----------------------------------------------------------------------------
    def _hold(self, lease: Lease) -> FakeBatch:
        if self.writes_fail:
            raise LedgerUnavailableError("the database could not be written (a test's fault)")
        batch = self.batches[lease.batch_id]
        if (batch.owner, batch.token) != (lease.owner, lease.token):
            raise LeaseLostError(f"batch {batch.id} was taken over by {batch.owner}")
        return batch

    def _job(self, lease: Lease, job_id: uuid.UUID) -> FakeJob:
        self._hold(lease)
        job = self.jobs[job_id]
        assert job.batch_id == lease.batch_id, "a job of another batch"
        return job

    # --- the batch ---------------------------------------------------------------------------
    async def stalled_batches(self, organisation: str | None = None) -> list[uuid.UUID]:
        return []

    async def previous_run(self, batch_id: uuid.UUID) -> tuple[BatchStatus, uuid.UUID | None]:
        return self.batches[batch_id].status, None

    async def begin_run(
        self,
        batch_id: uuid.UUID,
        owner: str,
        actor: str,
        flow_run_id: uuid.UUID | None,
        cancelled_by: str | None = None,
    ) -> RunStart:
        batch = self.batches[batch_id]
        if batch.status != BatchStatus.IN_PROGRESS:
            check_transition("batch", batch.status, BatchStatus.IN_PROGRESS, f"batch {batch_id}")
            batch.status = BatchStatus.IN_PROGRESS
        batch.owner, batch.token = owner, batch.token + 1
        return RunStart(Lease(batch_id=batch_id, owner=owner, token=batch.token), batch.status)

    async def renew_lease(self, lease: Lease) -> bool:
        batch = self.batches[lease.batch_id]
        return (batch.owner, batch.token) == (lease.owner, lease.token)

    async def release_lease(self, lease: Lease) -> None:
        if await self.renew_lease(lease):
            self.batches[lease.batch_id].owner = None

    async def batch_view(self, batch_id: uuid.UUID) -> BatchView:
        raise NotImplementedError("the orchestration unit tests read the fake's rows directly")

    async def batch_report(self, batch_id: uuid.UUID) -> BatchReport:
        raise NotImplementedError("the orchestration unit tests read the fake's rows directly")

    async def unfinished_jobs(self, batch_id: uuid.UUID) -> list[JobRef]:
        return [
            JobRef(j.id, j.position, j.status, j.name, j.flow_run_id)
            for j in self.jobs_of(batch_id)
            if j.status not in JOB_FINISHED
        ]

    async def requested_action(self, lease: Lease) -> RequestedAction | None:
        return self._hold(lease).requested_action

    async def request_pause(self, lease: Lease, reason: str) -> None:
        self.ask(self._hold(lease).id, RequestedAction.PAUSE, reason)

    async def request_cancel(self, lease: Lease, actor: str) -> None:
        self.ask(self._hold(lease).id, RequestedAction.CANCEL)
        self.log.append(("batch_cancel_requested", actor))

    async def mark_dispatched(self, lease: Lease, job_id: uuid.UUID) -> None:
        self._job(lease, job_id).dispatches += 1

    async def remember_flow_run(
        self, lease: Lease, job_id: uuid.UUID, flow_run_id: uuid.UUID
    ) -> None:
        self._job(lease, job_id).flow_run_id = flow_run_id

    def counts(self, batch_id: uuid.UUID) -> JobCounts:
        statuses = Counter(j.status for j in self.jobs_of(batch_id))
        return JobCounts(
            total=sum(statuses.values()),
            completed=statuses[JobStatus.COMPLETED],
            failed=statuses[JobStatus.FAILED],
            cancelled=statuses[JobStatus.CANCELLED],
            skipped=statuses[JobStatus.SKIPPED],
            in_progress=statuses[JobStatus.IN_PROGRESS],
        )

    async def settle_job(self, lease: Lease, job_id: uuid.UUID, may_trip: bool) -> JobSettled:
        job, batch = self._job(lease, job_id), self._hold(lease)
        if job.status not in JOB_FINISHED:
            return JobSettled(job.status, 0, None)
        counts = self.counts(batch.id)
        reason = None
        failed, finished = counts.failed, counts.completed + counts.failed + counts.skipped
        if may_trip and breaker_trips(failed, finished, batch.policy):
            reason = breaker_reason(failed, finished, batch.policy)
            self.ask(batch.id, RequestedAction.PAUSE, reason)
        return JobSettled(job.status, counts.finished, reason)

    async def finish_run(self, lease: Lease) -> BatchReport:
        batch = self._hold(lease)
        counts = self.counts(batch.id)
        if batch.requested_action == RequestedAction.CANCEL:
            for job in self.jobs_of(batch.id):
                if job.status not in JOB_FINISHED:
                    self._cancel(job)
            target = BatchStatus.CANCELLED
        elif counts.unfinished:
            target = BatchStatus.PAUSED
        else:
            target = final_batch_status(counts)
        check_transition("batch", batch.status, target, f"batch {batch.id}")
        batch.status, batch.owner, batch.requested_action = target, None, None
        counts = self.counts(batch.id)
        return BatchReport.model_construct(
            id=batch.id,
            name=batch.name,
            status=target,
            total=counts.total,
            completed=counts.completed + counts.skipped,
            failed=counts.failed,
            cancelled=counts.cancelled,
            pause_reason=batch.pause_reason,
            skipped=counts.skipped,
        )

    # --- a job -------------------------------------------------------------------------------
    async def begin_job(self, lease: Lease, job_id: uuid.UUID) -> JobPlan:
        job = self._job(lease, job_id)
        if job.status not in JOB_FINISHED or job.status == JobStatus.FAILED:
            rerun = steps_to_rerun(job.states()) if job.status == JobStatus.FAILED else set()
            for key, row in job.steps.items():
                if key in rerun or row.status in STEP_ACTIVE:
                    row.move(StepStatus.PENDING, f"step {key}")
                    row.error = row.blocked_by = None
            if job.status != JobStatus.IN_PROGRESS:
                job.move(JobStatus.IN_PROGRESS)
        return JobPlan(
            job.id,
            job.batch_id,
            uuid.UUID(int=0),
            uuid.UUID(int=job.position + 1),
            job.name,
            job.status,
            job.config,
            job.states(),
            job.graph,
        )

    async def record_skips(self, lease: Lease, job_id: uuid.UUID, skips: list[Skip]) -> None:
        job = self._job(lease, job_id)
        for key, _reason, blocked_by in skips:
            job.steps[key].move(StepStatus.SKIPPED, f"step {key}")
            job.steps[key].blocked_by = blocked_by

    async def finish_job(self, lease: Lease, job_id: uuid.UUID) -> JobStatus:
        job = self._job(lease, job_id)
        outcome = job_outcome(job.states())
        assert outcome is not None, f"job {job_id} finished with unfinished steps"
        job.move(outcome)
        return outcome

    async def hold_job(self, lease: Lease, job_id: uuid.UUID) -> None:
        job = self._job(lease, job_id)
        for key, row in job.steps.items():
            if row.status in STEP_ACTIVE:
                row.move(StepStatus.PENDING, f"step {key}")
        if job.status == JobStatus.IN_PROGRESS:
            job.move(JobStatus.PENDING)

    async def cancel_job(self, lease: Lease, job_id: uuid.UUID) -> bool:
        job = self._job(lease, job_id)
        if job.status in JOB_FINISHED:
            return False
        self._cancel(job)
        return True

    def _cancel(self, job: FakeJob) -> None:
        for key, row in job.steps.items():
            if row.status not in STEP_FINISHED:
                row.move(StepStatus.CANCELLED, f"step {key}")
        job.move(JobStatus.CANCELLED)

    # --- a step ------------------------------------------------------------------------------
    async def start_attempt(self, lease: Lease, job_id: uuid.UUID, key: str) -> StepInputs:
        job = self._job(lease, job_id)
        action = self.batches[lease.batch_id].requested_action
        if action is not None:
            raise BatchStoppingError(f"batch {lease.batch_id} was asked to {action}")
        row = job.steps[key]
        row.move(StepStatus.IN_PROGRESS, f"step {key}")
        row.attempts += 1
        done = StepStatus.COMPLETED
        results = {k: s.result or {} for k, s in job.steps.items() if s.status == done}
        return StepInputs(
            organisation_id=uuid.UUID(int=0),
            restaurant_id=uuid.UUID(int=job.position + 1),
            idempotency_key=f"{job.id}:{key}",
            attempt=row.attempts,
            config=job.config,
            results=results,
            encrypted_password=None,
            handler=job.handlers.get(key),
        )

    async def record_outcome(
        self, lease: Lease, job_id: uuid.UUID, key: str, outcome: Outcome
    ) -> None:
        row = self._job(lease, job_id).steps[key]
        if isinstance(outcome, Completed):
            row.move(StepStatus.COMPLETED, f"step {key}")
            row.result = outcome.result
        elif isinstance(outcome, Retrying):
            row.move(StepStatus.RETRYING, f"step {key}")
            row.error = str(outcome.error)
        elif isinstance(outcome, Failed):
            row.move(StepStatus.FAILED, f"step {key}")
            error = outcome.error
            internal = f"internal error ({type(error).__name__})"
            row.error = str(error) if isinstance(error, PlatformError) else internal


def _position(job: FakeJob) -> int:
    return job.position
