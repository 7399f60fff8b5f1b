"""`template_batch`: a batch of the restaurants a saved template selects, run now.

Scheduled deployments use it ("every Monday 09:00, register the next 5 hot leads from Auckland").
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, State

from regbatch.flow_params import BatchRun, TemplateRun
from regbatch.flows.batch import registration_batch
from regbatch.run_tags import BATCH_TAG
from regbatch.runner.logs import run_logger
from regbatch.runner.prefect_runs import tagged
from regbatch.tasks.batches import create_batch_from_saved_template


@flow(name="template-batch", retries=0, persist_result=False)
async def template_batch(run: TemplateRun) -> State[Any]:
    """Create a batch from a template's current selection and run it."""
    batch_id = await create_batch_from_saved_template(
        run.organisation, run.template, run.started_by
    )
    if batch_id is None:
        run_logger().info("template %r selects no restaurant right now", run.template)
        return Completed(message=f"template {run.template!r}: nothing to register")
    with tagged(BATCH_TAG):
        return await registration_batch(
            BatchRun(batch_id=batch_id, started_by=run.started_by), return_state=True
        )
