"""Prefect tasks that make batches: from a flow's parameters, a template, or a batch's failures.

Thin wrappers around the services (each owns its transaction), run on a worker thread so the
flow's event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import uuid

from prefect import task
from prefect.cache_policies import NO_CACHE

from regbatch.db.retries import RetryOutcome
from regbatch.flow_params import BatchRun
from regbatch.services.batches import create_batch
from regbatch.services.lifecycle import retry_failed
from regbatch.services.templates import create_batch_from_template


@task(name="create batch", cache_policy=NO_CACHE, persist_result=False)
async def create_batch_from_run(run: BatchRun) -> uuid.UUID:
    """The batch a flow run was asked to create (organisation, name, restaurants)."""
    return await asyncio.to_thread(
        create_batch,
        run.organisation or "",
        name=run.name or "",
        restaurant_ids=run.restaurant_ids,
        settings=run.settings,
        execution_mode=run.execution_mode,
        concurrency=run.concurrency,
        created_by=run.started_by,
    )


@task(name="create batch from template", cache_policy=NO_CACHE, persist_result=False)
async def create_batch_from_saved_template(
    organisation: str, template: str, created_by: str
) -> uuid.UUID | None:
    """A batch of the restaurants a saved template selects now; None when it selects none."""
    return await asyncio.to_thread(
        create_batch_from_template, organisation, template, created_by=created_by
    )


@task(name="create retry batch", cache_policy=NO_CACHE, persist_result=False)
async def create_retry_batch(batch_id: uuid.UUID, actor: str) -> RetryOutcome:
    """The linked batch of a batch's failed restaurants (made now, or by an earlier call)."""
    return await asyncio.to_thread(retry_failed, batch_id, actor)
