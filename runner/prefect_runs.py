"""What the runner asks of and tells Prefect about flow runs, beyond running them.

* whether a batch's flow run was cancelled in the Prefect UI or API (a cancel from anywhere is a
  cancel of the batch);
* marking the flow runs of a runner that is gone (killed, frozen past its lease) Crashed, with
  their restaurant subflows, so no flow run stays Running with nobody behind it.

Best effort by design: Prefect being unreachable never stops a batch; it is logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.context import TagsContext
from prefect.states import Cancelled, Crashed, State

from regbatch.run_tags import KIND_TAGS, PRODUCT_TAG

log = logging.getLogger(__name__)

UNFINISHED = [
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
]
CANCELLED = frozenset({StateType.CANCELLING, StateType.CANCELLED})


@contextmanager
def tagged(kind_tag: str) -> Iterator[None]:
    """Flow runs created inside carry `regbatch` and `kind_tag`, not the caller's kind tag.

    Prefect gives a subflow the tags in context, which would tag a batch's restaurants as a
    batch too; so the kind tag replaces the one in context instead of adding to it.
    """
    current = TagsContext.get().current_tags
    kept = {tag for tag in current if tag not in KIND_TAGS}
    with TagsContext(current_tags=kept | {PRODUCT_TAG, kind_tag}):
        yield


@contextmanager
def untagged() -> Iterator[None]:
    """Task runs created inside carry no tag.

    Prefect asks its server for a slot of every tag's concurrency limit each time a tagged task
    run starts (one more API call per step, on both sides, whether a limit exists or not). The
    steps need none: the batch's concurrency and the account queue limit them.
    """
    with TagsContext(current_tags=set()):
        yield


def prefect_actor(flow_run_id: uuid.UUID | str) -> str:
    """The audit log's actor for a cancel that came from Prefect (its UI or API)."""
    return f"prefect:flow-run/{flow_run_id}"


async def was_cancelled(flow_run_id: uuid.UUID) -> bool:
    """True when the flow run is Cancelling or Cancelled in Prefect."""
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
    return run.state is not None and run.state.type in CANCELLED


async def crash_runs(
    flow_run_id: uuid.UUID, message: str, *, itself: bool = True, cancelled: bool = False
) -> int:
    """Mark the run (unless `itself` is False) and its unfinished subflow runs Crashed.

    `cancelled`: mark them Cancelled instead (the run was cancelled in Prefect, and nobody was
    left to carry it out).
    """
    ended = 0
    async with get_client() as client:
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED)),
            )
        )
        targets = [child.id for child in children]
        if itself:
            run = await client.read_flow_run(flow_run_id)
            if run.state is not None and run.state.type in UNFINISHED:
                targets.append(flow_run_id)
        for target in targets:
            state: State[Any] = (
                Cancelled(message=message) if cancelled else Crashed(message=message)
            )
            await client.set_flow_run_state(target, state, force=True)
            ended += 1
    return ended


def cancel_subflows(flow_run_id: uuid.UUID, message: str) -> int:
    """Mark the run's unfinished subflow runs Cancelled (they died with its process)."""
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED)),
            )
        )
        for child in children:
            client.set_flow_run_state(child.id, Cancelled(message=message), force=True)
    return len(children)
