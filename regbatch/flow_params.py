"""The typed parameters of the deployable flows: the Prefect UI renders them as forms, and the
Prefect server rejects a run whose parameters do not validate."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from regbatch.batch_rules import MAX_CONCURRENCY
from regbatch.statuses import ExecutionMode


class BatchRun(BaseModel):
    """Run an existing batch, or create one from restaurants and run it."""

    model_config = ConfigDict(extra="forbid")

    batch_id: uuid.UUID | None = Field(
        default=None, description="An existing batch to run (draft, pending, paused or stalled)."
    )
    organisation: str | None = Field(
        default=None, description="For a new batch: the organisation's name or id."
    )
    name: str | None = Field(default=None, description="For a new batch: its name.", max_length=200)
    restaurant_ids: list[uuid.UUID] = Field(
        default_factory=list, description="For a new batch: the restaurants, in order."
    )
    execution_mode: ExecutionMode = Field(
        default=ExecutionMode.SEQUENTIAL,
        description="sequential, parallel (bounded by concurrency) or distributed (work pool).",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONCURRENCY,
        description="For a new batch: restaurants at once (parallel and distributed); when "
        "empty, 1 in sequential mode, else REGBATCH_DEFAULT_CONCURRENCY.",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Common registration settings for every restaurant."
    )
    started_by: str = Field(default="user:prefect", description="Recorded in the audit log.")

    @property
    def chooses_nothing(self) -> bool:
        """True for the empty form (the UI's Quick run): no batch and nothing to make one of."""
        return self.batch_id is None and not (self.organisation or self.name or self.restaurant_ids)

    @model_validator(mode="after")
    def _one_way(self) -> BatchRun:
        creating = self.organisation or self.name or self.restaurant_ids
        if self.batch_id is not None and creating:
            raise ValueError(
                "give either batch_id (run an existing batch) or organisation, name "
                "and restaurant_ids (create one), not both"
            )
        if self.batch_id is not None and (self.concurrency is not None or self.settings):
            raise ValueError(
                "concurrency and settings are for a new batch; an existing batch runs with "
                "those it was made with: leave them empty with batch_id"
            )
        if (
            self.batch_id is None
            and creating
            and not (self.organisation and self.name and self.restaurant_ids)
        ):
            raise ValueError(
                "give batch_id to run an existing batch, or organisation, name and "
                "restaurant_ids to create and run a new one"
            )
        return self


NOTHING_TO_RUN = (
    "nothing to run: Quick run starts the registration-batch deployment with an empty form. "
    "Use Custom run and fill in run.batch_id (an existing batch; `regbatch batch list` shows "
    "them), or run.organisation, run.name and run.restaurant_ids (a new batch); or start a "
    "batch from a terminal with `regbatch batch start BATCH_ID`"
)


class RetryRun(BaseModel):
    """Retry the failed restaurants of a batch: a new linked batch, run now."""

    model_config = ConfigDict(extra="forbid")

    batch_id: uuid.UUID | None = Field(
        default=None, description="The batch whose failed restaurants to retry."
    )
    started_by: str = Field(default="user:prefect", description="Recorded in the audit log.")


class TemplateRun(BaseModel):
    """Register the restaurants a saved template selects now (those not registered yet)."""

    model_config = ConfigDict(extra="forbid")

    organisation: str | None = Field(default=None, description="The organisation's name or id.")
    template: str | None = Field(default=None, description="The template's name or id.")
    started_by: str = Field(default="schedule", description="Recorded in the audit log.")


NOTHING_TO_RETRY = (
    "nothing to retry: Quick run starts the retry-failed deployment with an empty form. Use "
    "Custom run and fill in run.batch_id (the batch whose failed restaurants to retry; "
    "`regbatch batch list` shows them)"
)

NO_TEMPLATE = (
    "no template to run: Quick run starts the template-batch deployment with an empty form. "
    "Use Custom run and fill in run.organisation and run.template (`regbatch template list "
    "--org ORG` shows them)"
)
