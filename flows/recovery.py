"""`recover_stalled_batches`: the stalled-work detector, runnable on a schedule.

A batch is stalled when it is in progress but its runner's lease has expired (the process died,
the machine was lost). Each is run again from its last completed steps; steps that were in
flight run again with the same idempotency key, so the platform performs nothing twice.
"""

from __future__ import annotations

import uuid

from prefect import flow
from prefect.logging import get_run_logger

from db.lifecycle import stalled_batches
from flows.batch import registration_batch
from regbatch.errors import ConflictError
from regbatch.flow_params import BatchRun
from services.execution import transact


@flow(name="recover-stalled-batches", retries=0, persist_result=False)
async def recover_stalled_batches() -> list[uuid.UUID]:
    """Find batches whose runner is gone and run each to its end; returns their ids."""
    logger = get_run_logger()
    stalled = await transact(stalled_batches)
    if not stalled:
        logger.info("no stalled batches")
    recovered = []
    for batch_id in stalled:
        logger.warning("batch %s is stalled (its runner's lease expired); taking it over", batch_id)
        try:
            await registration_batch(
                BatchRun(batch_id=batch_id, started_by="system"), return_state=True
            )
        except ConflictError as exc:  # another runner got there first
            logger.info("%s", exc)
            continue
        recovered.append(batch_id)
    return recovered
