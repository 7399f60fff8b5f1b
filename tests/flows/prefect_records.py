"""What Prefect's server has recorded of our runs, read once it is all there.

The server records task runs from the events their engines send, asynchronously: a flow run can
be over before its last task runs are readable (seen on a slow machine: 22 of 24). Every read of
task runs that counts them waits here for the count it expects."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import FlowRun, TaskRun


async def read_finished_task_runs(
    *, flow_run_ids: Iterable[uuid.UUID] | None = None, name: str | None = None
) -> list[TaskRun]:
    """The task runs in a final state, of those flow runs and/or with that name."""
    flows = None
    if flow_run_ids is not None:
        flows = FlowRunFilter(id=FlowRunFilterId(any_=list(flow_run_ids)))
    tasks = TaskRunFilter(name=TaskRunFilterName(any_=[name])) if name is not None else None
    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=flows, task_run_filter=tasks)
    return [r for r in runs if r.state is not None and r.state.is_final()]


async def restaurant_flow_runs(batch_flow_run_id: uuid.UUID) -> list[FlowRun]:
    """The flow runs of a batch's restaurants (its subflow runs; flow runs are created by the
    client's own API call, so they are all there once the batch's run has ended)."""
    async with get_client() as client:
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[batch_flow_run_id])
            )
        )


def finished_task_runs(
    count: int,
    *,
    flow_run_ids: Iterable[uuid.UUID] | None = None,
    name: str | None = None,
    timeout_s: float = 30,
) -> list[TaskRun]:
    """Those task runs once at least `count` are recorded as finished, or all there are at the
    deadline (the caller's assertion on the count then says what was missing)."""
    ids = list(flow_run_ids) if flow_run_ids is not None else None
    deadline = time.monotonic() + timeout_s
    while True:
        runs = asyncio.run(read_finished_task_runs(flow_run_ids=ids, name=name))
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)
