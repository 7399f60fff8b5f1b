"""Read models of batches, jobs and steps, shared by the CLI, the REST API and the Python API.

Statuses are the enums of regbatch.statuses (they serialise to the same strings)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from regbatch.restaurant import (
    ImportAction,
    LeadStage,
    LeadType,
    RegistrationStatus,
    RestaurantType,
)
from regbatch.statuses import BatchStatus, ExecutionMode, JobStatus, RequestedAction, StepStatus


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StepView(_View):
    step_number: int
    step_key: str
    status: StepStatus
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    result_data: dict[str, Any] | None
    error_message: str | None
    error_details: dict[str, Any] | None
    skip_reason: str | None
    blocked_by_step: int | None
    carried_over: bool
    handler: str | None = None
    """The plugin function that runs the step (`module:function`); None: the built-in step."""


class JobView(_View):
    id: uuid.UUID
    restaurant_id: uuid.UUID
    restaurant_name: str
    position: int
    status: JobStatus
    current_step: int | None
    """The step it is at (regbatch.steps.current_step): running, else waiting to start, else
    the one that failed."""
    error_message: str | None
    error_details: dict[str, Any] | None
    retry_of_job_id: uuid.UUID | None
    started_at: datetime | None
    completed_at: datetime | None
    steps: list[StepView] = []


class BatchSummary(_View):
    """One line of a batch list (the seed's `{id, name, status, total, completed, failed}`)."""

    id: uuid.UUID
    name: str
    status: BatchStatus
    execution_mode: ExecutionMode
    concurrency: int
    total: int
    completed: int
    failed: int
    cancelled: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    retry_of_batch_id: uuid.UUID | None
    total_steps: int = 12
    """The steps of the batch's graph: the twelve built-in ones and its plugins' extra steps."""
    current_step: int | None = None
    """The lowest step one of its restaurants is running, else the lowest that failed; None when
    no step runs or failed (or when the list did not ask)."""

    @property
    def finished(self) -> int:
        """Its restaurants that ended, from its counters: completed (the skipped among them),
        failed or cancelled. Not a field: views and their JSON are unchanged."""
        return self.completed + self.failed + self.cancelled


class JobPreview(BaseModel):
    """One restaurant of a batch, as a batch list shows it."""

    job_id: uuid.UUID
    restaurant_id: uuid.UUID
    name: str
    city: str | None
    status: JobStatus
    current_step: int | None


class BatchListItem(BatchSummary):
    """One line of a batch list, with the first of its restaurants when asked."""

    jobs: list[JobPreview] | None = None
    """The first restaurants of the batch (in its order), only with `include=jobs`."""


class BatchView(BatchSummary):
    organisation_id: uuid.UUID
    settings: dict[str, Any]
    created_by: str | None
    breaker_threshold: float
    breaker_min_finished: int
    requested_action: RequestedAction | None
    pause_reason: str | None
    error_message: str | None
    paused_at: datetime | None
    cancelled_at: datetime | None
    updated_at: datetime
    flow_run_id: uuid.UUID | None = None
    """The Prefect flow run that last ran the batch (its page in the Prefect UI)."""
    step_graph: SkipJsonSchema[dict[str, Any] | None] = Field(default=None, exclude=True)
    """The step graph the batch was created with (regbatch.handlers.graph_record); for the
    runner's pre-flight, not shown."""


class BatchDetail(BatchView):
    jobs: list[JobView] = []


class BatchReport(BatchDetail):
    """The batch as its runner reports it in Prefect (db.batches.batch_report): of a big batch,
    only the jobs its table shows (`jobs` may be fewer than `total`)."""

    skipped: int
    """Its restaurants skipped (counted among the completed), shown or not."""


class BatchPage(BaseModel):
    """A page of batches, newest first; pass `next_cursor` to get the next page."""

    items: list[BatchSummary]
    next_cursor: str | None


class BatchListPage(BaseModel):
    """One page of a filtered, sorted batch list, with how many batches match in all."""

    items: list[BatchListItem]
    total: int
    offset: int
    limit: int
    next_cursor: str | None = None
    """Pass it back as `cursor` for the next page; None on the last page."""


class BatchJobsPage(BatchView):
    """A batch with one page of its jobs (in the batch's order) and their steps."""

    jobs: list[JobView]
    jobs_total: int
    next_cursor: str | None
    """Pass it back as `cursor` for the next page of jobs; None on the last page."""


class MatrixCell(NamedTuple):
    """One step of one restaurant, as the batch's matrix shows it (no step results).

    The matrix's types are plain tuples and dataclasses, not pydantic models: a page holds
    1,200 cells and is rebuilt every 2 s while someone watches."""

    status: StepStatus
    attempts: int
    error_message: str | None
    skip_reason: str | None


@dataclass(slots=True)
class MatrixRow:
    """One restaurant of a batch: its job and a cell per step number."""

    job_id: uuid.UUID
    position: int
    restaurant_name: str
    status: JobStatus
    current_step: int | None
    error_message: str | None
    cells: dict[int, MatrixCell]


@dataclass(slots=True)
class MatrixPage:
    """A page of a batch's restaurant x step matrix, with how many restaurants match in all."""

    rows: list[MatrixRow]
    total: int
    offset: int
    limit: int


class DeliveryAttempt(BaseModel):
    """One attempt to deliver a webhook, as the batch's operation log recorded it."""

    at: datetime
    batch_id: uuid.UUID
    delivered: bool
    subscription_id: str | None
    url: str | None
    event: str | None
    attempt: int | None
    status_code: int | None
    error: str | None


class RestaurantView(_View):
    """A restaurant as interfaces list it (never its account password)."""

    id: uuid.UUID
    external_id: str | None
    name: str
    contact_name: str | None
    email: str | None
    phone: str | None
    address: str | None
    city: str | None
    country: str
    cuisine: str | None
    restaurant_type: RestaurantType
    lead_type: LeadType
    lead_stage: LeadStage
    icp_score: int
    registration_status: RegistrationStatus
    subdomain: str | None


class UpsertOutcome(BaseModel):
    """What saving one restaurant did: `row` is its place in the request, from 1."""

    row: int
    action: ImportAction
    id: uuid.UUID
    name: str


class RestaurantRow(BaseModel):
    """A restaurant as a list of candidates shows it."""

    id: uuid.UUID
    name: str
    city: str | None
    lead_stage: LeadStage
    lead_type: LeadType
    restaurant_type: RestaurantType
    registration_status: RegistrationStatus
    icp_score: int
    external_id: str | None = None
    """The organisation's own id for it (a re-import or an upsert matches on it)."""
    email: str | None = None


class RestaurantPage(BaseModel):
    """One page of the restaurants a filter matches, with how many match in all."""

    items: list[RestaurantRow]
    total: int
    offset: int
    limit: int


class PreflightRow(BaseModel):
    """A restaurant chosen for a batch, and every problem that would keep it out or fail it."""

    id: uuid.UUID
    name: str
    city: str | None
    problems: list[str]
    """Pre-flight problems of its configuration with the batch's settings (field: fix)."""
    busy_in_batch: uuid.UUID | None = None
    """The unfinished batch that already holds it, if any."""
