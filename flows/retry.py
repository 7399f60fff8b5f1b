"""`retry_failed_batch`: make the linked batch of a batch's failed restaurants and run it."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow
from prefect.states import State

from flows.batch import registration_batch
from regbatch.flow_params import BatchRun, RetryRun
from services.lifecycle import retry_failed


@flow(name="retry-failed-batch", retries=0, persist_result=False)
async def retry_failed_batch(run: RetryRun) -> State[Any]:
    """Retry a batch's failed restaurants: only their failed steps run again."""
    new_batch_id = await asyncio.to_thread(retry_failed, run.batch_id, run.started_by)
    return await registration_batch(
        BatchRun(batch_id=new_batch_id, started_by=run.started_by), return_state=True
    )
