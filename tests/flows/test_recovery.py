"""Crash recovery: kill -9 the process running a parallel batch, then `regbatch recover`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from regbatch.db.engine import session_scope
from regbatch.db.models import Batch
from regbatch.db.types import utcnow
from regbatch.services.batches import get_batch
from regbatch.statuses import BatchStatus, RequestedAction
from tests.cli import REGBATCH, recovered_status, run
from tests.factories import lease_of, make_org
from tests.flows.conftest import new_batch
from tests.flows.test_batch import wait_for

pytestmark = [pytest.mark.flow, pytest.mark.slow]


def lease_expired(batch_id) -> bool:
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        return batch is not None and (
            batch.lease_expires_at is None or batch.lease_expires_at < utcnow()
        )


def test_kill_9_then_recover_completes_with_no_duplicate_side_effect(
    org_id, sandbox, tmp_path
) -> None:
    sandbox.set_latency(default_ms=400)
    batch_id, _, _ = new_batch(org_id, 6, execution_mode="parallel", concurrency=3)
    log = open(tmp_path / "runner.log", "w")  # noqa: SIM115
    runner = subprocess.Popen(
        [REGBATCH, "batch", "run", str(batch_id)],
        # long enough for the refused second runner below to start and reach the lease on a
        # slow machine (its CLI start alone takes up to 5 s on 2 busy cores)
        env={**os.environ, "REGBATCH_LEASE_SECONDS": "20"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def mid_batch() -> list:
        # a step that started within the last 150 ms is still waiting for its 400 ms answer
        # when the runner is killed right after this read
        detail = get_batch(batch_id)
        recent = utcnow() - timedelta(milliseconds=150)
        flying = [
            s
            for j in detail.jobs
            for s in j.steps
            if s.status == "in_progress" and s.started_at is not None and s.started_at > recent
        ]
        return flying if detail.completed >= 1 and flying else []

    try:
        wait_for(mid_batch, timeout=120, interval=0.05)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        log.close()
    stranded = get_batch(batch_id)
    assert stranded.status == "in_progress" and stranded.completed < 6
    # the killed runner left steps in flight: recovery must send them again, not skip them
    assert any(s.status == "in_progress" for j in stranded.jobs for s in j.steps)

    # the dead runner's lease is still live: a second runner is refused
    refused = run("batch", "run", str(batch_id), check=False)
    assert refused.returncode == 1
    assert "is being run by" in refused.stderr and "two runners never run one batch" in (
        refused.stderr
    )

    wait_for(lambda: lease_expired(batch_id), timeout=60, interval=0.5)
    recovered = run(
        "recover", "--org", str(org_id), "--json", env={"REGBATCH_LEASE_SECONDS": "8"}, check=False
    )
    assert recovered_status(recovered, batch_id) == "completed", recovered.stdout + recovered.stderr

    final = get_batch(batch_id)
    assert (final.status, final.completed, final.failed) == ("completed", 6, 0)
    effects = Counter((e["restaurant"], e["step"]) for e in sandbox.ledger() if not e["replay"])
    completed_steps = {
        (str(j.restaurant_id), s.step_key)
        for j in final.jobs
        for s in j.steps
        if s.status == "completed"
    }
    assert set(effects) == completed_steps
    assert set(effects.values()) == {1}, [k for k, v in effects.items() if v > 1]


def test_recover_of_one_organisation_leaves_another_organisations_stalled_batch_alone(
    org_id, prefect_server
) -> None:
    """`recover --org A` takes over A's stalled batch (asked to cancel, so it ends at once) and
    leaves B's stalled batch as it was: its lease, its token, its status."""
    ours, _, _ = new_batch(org_id, 1)
    with session_scope() as session:
        other_org = make_org(session)
    theirs, _, _ = new_batch(other_org, 1)
    expired = utcnow() - timedelta(minutes=1)
    with session_scope() as session:
        session.execute(
            update(Batch)
            .where(Batch.id.in_([ours, theirs]))
            .values(status=BatchStatus.IN_PROGRESS, lease_owner="gone", lease_expires_at=expired)
        )
        session.execute(
            update(Batch).where(Batch.id == ours).values(requested_action=RequestedAction.CANCEL)
        )
    before = lease_of(theirs)

    # exit code 1: what it recovered did not complete (it was cancelled, as asked)
    recovered = run("recover", "--org", str(org_id), "--json", check=False)

    assert recovered_status(recovered, ours) == "cancelled", recovered.stdout + recovered.stderr
    assert [b["id"] for b in json.loads(recovered.stdout)["recovered"]] == [str(ours)]
    assert get_batch(theirs).status == "in_progress"
    assert lease_of(theirs) == before
    with session_scope() as session:  # not left stalled for anyone else
        session.execute(
            update(Batch)
            .where(Batch.id == theirs)
            .values(lease_expires_at=utcnow() + timedelta(days=1))
        )
