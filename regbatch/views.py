"""Read models of batches, jobs and steps, shared by the CLI, the REST API and the Python API.

Statuses are the enums of regbatch.statuses (they serialise to the same strings)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

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


class BatchPage(BaseModel):
    """A page of batches, newest first; pass `next_cursor` to get the next page."""

    items: list[BatchSummary]
    next_cursor: str | None


class BatchListPage(BaseModel):
    """One page of a filtered, sorted batch list, with how many batches match in all."""

    items: list[BatchSummary]
    total: int
    offset: int
    limit: int


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


class RestaurantRow(BaseModel):
    """A restaurant as a list of candidates shows it."""

    id: uuid.UUID
    name: str
    city: str | None
    lead_stage: str
    lead_type: str
    restaurant_type: str
    registration_status: str
    icp_score: int


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
