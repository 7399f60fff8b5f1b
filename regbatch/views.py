"""Read models of batches, jobs and steps, shared by the CLI, the REST API and the Python API.

Statuses are the enums of regbatch.statuses (they serialise to the same strings)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

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
