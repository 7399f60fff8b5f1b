"""Run a batch in this process: the batch flow, called as a plain Python function.

Shared by the interfaces (CLI, Python API): they sit above the flows, so this lives with them.
Prefect is put offline here, before it is first imported, since this is where such a program
starts it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from regbatch.errors import RegbatchError
from regbatch.flow_params import BatchRun
from regbatch.offline import apply_offline_defaults
from regbatch.run_tags import BATCH_TAG
from regbatch.services.batches import get_batch, parse_uuid
from regbatch.views import BatchDetail


async def run_batch_async(batch_id: str | uuid.UUID, started_by: str = "user") -> BatchDetail:
    """Run the batch flow here until the batch completes, fails, pauses or is cancelled.

    Refusals (a batch already finished, or held by a live runner) raise the same errors as
    everywhere else, not a failed flow run.
    """
    apply_offline_defaults()
    from regbatch.flows.batch import registration_batch
    from regbatch.runner.prefect_runs import tagged

    batch_uuid = parse_uuid(batch_id, "batch_id")
    with tagged(BATCH_TAG):
        state = await registration_batch(
            BatchRun(batch_id=batch_uuid, started_by=started_by), return_state=True
        )
    _raise_refusal(state)
    return get_batch(batch_uuid)


def run_batch(batch_id: str | uuid.UUID, started_by: str = "user") -> BatchDetail:
    """Blocking form of `run_batch_async` (a new event loop)."""
    return asyncio.run(run_batch_async(batch_id, started_by))


def recover(organisation: str | None = None) -> list[BatchDetail]:
    """Run every stalled batch (in progress, its runner's lease expired) to its end, here;
    only those of the organisation (its name or id) when one is given. An unknown organisation
    raises NotFoundError before anything is taken over."""
    apply_offline_defaults()
    from regbatch.flows.recovery import recover_stalled_batches
    from regbatch.services.catalog import organisation_id

    scope = str(organisation_id(organisation)) if organisation is not None else None

    async def recover_here() -> Any:
        return await recover_stalled_batches(scope, return_state=True)

    state = asyncio.run(recover_here())
    _raise_refusal(state)
    result = state.result(raise_on_failure=False, _sync=True)
    return [get_batch(batch_id) for batch_id in (result or [])]


def _raise_refusal(state: Any) -> None:
    if state.is_failed() or state.is_crashed():
        error = state.result(raise_on_failure=False, _sync=True)
        if isinstance(error, RegbatchError):
            raise error
