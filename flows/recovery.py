"""`recover_stalled_batches`: the stalled-work detector, runnable on a schedule.

A batch is stalled when it is in progress but its runner's lease has expired (the process died,
the machine was lost, or it is frozen). Each is taken over with a new fencing token (the old
runner, should it wake up, can no longer write) and run again from its last completed steps;
steps that were in flight run again with the same idempotency key, so the platform performs
nothing twice. A batch whose operator had asked it to cancel or pause, or whose flow run was
cancelled in Prefect, is cancelled or paused instead, never resumed.
"""

from __future__ import annotations

import uuid

from prefect import flow

from regbatch.errors import ConflictError
from regbatch.flow_params import BatchRun
from regbatch.flows.batch import registration_batch
from regbatch.run_tags import BATCH_TAG
from regbatch.runner.ledger import ledger
from regbatch.runner.logs import run_logger
from regbatch.runner.prefect_runs import tagged


@flow(name="recover-stalled-batches", retries=0, persist_result=False)
async def recover_stalled_batches(organisation: str | None = None) -> list[uuid.UUID]:
    """Find batches whose runner is gone and run each to its end; returns their ids.

    Args:
        organisation: only this organisation's batches (its name or id); empty: every
            organisation's.
    """
    logger = run_logger()
    stalled = await ledger().stalled_batches(organisation or None)
    if not stalled:
        logger.info("no stalled batches" + (f" of {organisation!r}" if organisation else ""))
    recovered = []
    for batch_id in stalled:
        logger.warning("batch %s is stalled (its runner's lease expired); taking it over", batch_id)
        with tagged(BATCH_TAG):
            state = await registration_batch(
                BatchRun(batch_id=batch_id, started_by="system:recovery"), return_state=True
            )
        if state.is_failed() or state.is_crashed():
            error = await state.aresult(raise_on_failure=False)
            if isinstance(error, ConflictError):  # another runner got there first
                logger.info("%s", error)
                continue
            logger.error("batch %s could not be recovered: %s", batch_id, state.message)
            continue
        recovered.append(batch_id)
    return recovered
