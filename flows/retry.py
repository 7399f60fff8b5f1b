"""`retry_failed_batch`: make the linked batch of a batch's failed restaurants and run it."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed, State

from regbatch.flow_params import NOTHING_TO_RETRY, BatchRun, RetryRun
from regbatch.flows.batch import registration_batch
from regbatch.run_tags import BATCH_TAG
from regbatch.runner.logs import run_logger
from regbatch.runner.prefect_runs import tagged
from regbatch.statuses import BatchStatus
from regbatch.tasks.batches import create_retry_batch

EMPTY_FORM = RetryRun()  # Quick run's parameters: refused with NOTHING_TO_RETRY


@flow(name="retry-failed-batch", retries=0, persist_result=False)
async def retry_failed_batch(run: RetryRun = EMPTY_FORM) -> State[Any]:
    """Retry a batch's failed restaurants: only their failed steps run again.

    Triggered twice, it makes one retry batch: a run that finds the retry batch made by an
    earlier one runs it only if it never started (a draft), and otherwise leaves it to its runner.

    Args:
        run: the batch whose failed restaurants to retry.
    """
    if run.batch_id is None:
        run_logger().error("%s", NOTHING_TO_RETRY)
        return Failed(message=NOTHING_TO_RETRY)
    outcome = await create_retry_batch(run.batch_id, run.started_by)
    if outcome.existed and outcome.status != BatchStatus.DRAFT:
        return Completed(
            message=f"retry batch {outcome.batch_id} already exists ({outcome.status}); "
            "not run again"
        )
    with tagged(BATCH_TAG):
        return await registration_batch(
            BatchRun(batch_id=outcome.batch_id, started_by=run.started_by), return_state=True
        )
