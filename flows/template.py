"""`template_batch`: a batch of the restaurants a saved template selects, run now.

Scheduled deployments use it ("every Monday 09:00, register the next 5 hot leads from Auckland").
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed, State

from regbatch.flow_params import NO_TEMPLATE, BatchRun, TemplateRun
from regbatch.flows.batch import registration_batch
from regbatch.run_tags import BATCH_TAG
from regbatch.runner.logs import run_logger
from regbatch.runner.prefect_runs import tagged
from regbatch.tasks.batches import create_batch_from_saved_template

EMPTY_FORM = TemplateRun()  # Quick run's parameters: refused with NO_TEMPLATE


@flow(name="template-batch", retries=0, persist_result=False)
async def template_batch(run: TemplateRun = EMPTY_FORM) -> State[Any]:
    """Create a batch from a template's current selection and run it.

    Args:
        run: the organisation and its saved template (`regbatch template create`).
    """
    organisation, template = run.organisation, run.template
    if not (organisation and template):
        run_logger().error("%s", NO_TEMPLATE)
        return Failed(message=NO_TEMPLATE)
    batch_id = await create_batch_from_saved_template(organisation, template, run.started_by)
    if batch_id is None:
        run_logger().info("template %r selects no restaurant right now", template)
        return Completed(message=f"template {template!r}: nothing to register")
    with tagged(BATCH_TAG):
        return await registration_batch(
            BatchRun(batch_id=batch_id, started_by=run.started_by), return_state=True
        )
