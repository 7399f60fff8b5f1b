"""A runner's lease on a batch: who holds it, and the fencing token every one of its writes states.

The token grows at every start and takeover of the batch, so a runner that lost its lease (frozen
past it, cut off from the database) has a stale token: the ledger refuses its writes.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class Lease(BaseModel):
    """The lease a runner holds on a batch (passed to every restaurant it runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: uuid.UUID = Field(description="The batch this lease is on.")
    owner: str = Field(description="Who holds it: host, process and flow run.")
    token: int = Field(ge=1, description="The fencing token; grows at every start and takeover.")
