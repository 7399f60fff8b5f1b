"""The garbage collector in regbatch's own long-lived processes: freeze what start-up made, once.

A runner or REST API process holds several hundred thousand objects from its imports alone
(Prefect, SQLAlchemy, pydantic, FastAPI), and CPython's full collection walks every one of them:
about 145 ms per full collection in a runner, 70 ms in the REST API (bench/README.md, "The
garbage collector"). Objects alive at start-up live as long as the process, so after one
collection they are moved out of the collector's reach (`gc.freeze`); everything made later is
collected as before.

What it costs: an object alive at the freeze that later becomes part of a reference cycle is
never collected (reference counting still frees the rest). Hence once per process, after a
collection, and only in processes that are regbatch's own: the CLI and the REST API claim theirs
(`claim_process`), and a batch run's process is its own when Prefect started it for that very
flow run (a deployment's run: PREFECT__FLOW_RUN_ID is the run's id). A program that runs batches
through the Python API, or a flow of the user's that calls it, keeps its collector as it was.
"""

from __future__ import annotations

import gc
import os
import threading
import uuid

_lock = threading.Lock()
_claimed = False
_frozen = False


def claim_process() -> None:
    """Mark this process as regbatch's own (the CLI, the REST API), where freezing may act."""
    global _claimed
    _claimed = True


def owns_process(flow_run_id: uuid.UUID | None = None) -> bool:
    """True in a claimed process, or in the one Prefect started to execute `flow_run_id`."""
    started_for = os.environ.get("PREFECT__FLOW_RUN_ID")
    return _claimed or (flow_run_id is not None and started_for == str(flow_run_id))


def freeze_start_up_heap(flow_run_id: uuid.UUID | None = None) -> bool:
    """In a process of regbatch's own (`owns_process`): collect, then freeze every object alive
    now, once per process. True if this call froze."""
    global _frozen
    with _lock:
        if _frozen or not owns_process(flow_run_id):
            return False
        gc.collect()
        gc.freeze()
        _frozen = True
        return True
