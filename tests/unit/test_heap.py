"""The start-up heap is frozen once, in regbatch's own processes only (each case runs in a fresh
interpreter: freezing is once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def in_fresh_process(code: str, **env: str) -> str:
    """What `code` prints, run by a new interpreter (with `env` added to this one's)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "PREFECT__FLOW_RUN_ID"}, **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_claimed_process_freezes_its_start_up_heap_once() -> None:
    out = in_fresh_process(
        """
        import gc
        from regbatch import heap
        before = gc.get_freeze_count()
        heap.claim_process()
        first = heap.freeze_start_up_heap()
        frozen = gc.get_freeze_count()
        print(before, first, frozen > 1000, heap.freeze_start_up_heap(), gc.get_freeze_count() == frozen)
        """
    )
    assert out == "0 True True False True"


def test_an_unclaimed_process_keeps_its_collector_as_it_was() -> None:
    out = in_fresh_process(
        """
        import gc
        from regbatch import heap
        print(heap.freeze_start_up_heap(), gc.get_freeze_count())
        """
    )
    assert out == "False 0"


def test_a_process_prefect_started_for_a_batch_run_is_that_run_s_own() -> None:
    """Prefect's flow-run processes carry PREFECT__FLOW_RUN_ID; a user's flow that runs a batch
    through the Python API is not the batch run's process."""
    out = in_fresh_process(
        """
        import gc, uuid
        from regbatch import heap
        print(heap.freeze_start_up_heap(uuid.uuid4()), gc.get_freeze_count())
        print(heap.freeze_start_up_heap(uuid.UUID(int=1)), gc.get_freeze_count() > 1000)
        """,
        PREFECT__FLOW_RUN_ID="00000000-0000-0000-0000-000000000001",
    )
    assert out.splitlines() == ["False 0", "True True"]


@pytest.mark.parametrize("started", [False, True])
def test_the_rest_api_freezes_its_heap_when_it_starts(started: bool) -> None:
    out = in_fresh_process(
        f"""
        import gc
        from fastapi.testclient import TestClient
        from regbatch.api.rest import create_app
        app = create_app()
        if {started}:
            with TestClient(app):
                print(gc.get_freeze_count() > 50_000)
        else:
            print(gc.get_freeze_count() > 50_000)
        """
    )
    assert out == str(started)
