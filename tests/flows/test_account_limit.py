"""Account creation takes turns across concurrent runs: a queue, never a timeout."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime

import pytest

from regbatch.db.engine import session_scope
from regbatch.db.models import JobStep
from regbatch.flows.restaurant import register_restaurant
from tests.flows.conftest import lease_of, new_batch, run
from tests.settings_env import settings_env

pytestmark = pytest.mark.flow


def _run_concurrently(job_ids: list) -> list:
    leases = {job_id: lease_of(job_id) for job_id in job_ids}  # one lease, taken before
    states: list = []
    threads = [
        threading.Thread(
            target=lambda j=job_id: states.append(
                run(register_restaurant(j, leases[j], return_state=True))
            )
        )
        for job_id in job_ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return states


def _account_times(sandbox) -> list[datetime]:
    """When each account creation reached the platform (its rate limiter counts from there)."""
    return sorted(
        datetime.fromisoformat(r["received_at"])
        for r in sandbox.requests()
        if r["step"] == "account_registration" and r["outcome"] == "performed"
    )


def test_concurrent_runs_never_create_accounts_faster_than_the_limit(org_id, sandbox) -> None:
    sandbox.set_account_spacing(1.0)  # the platform refuses faster creations with a 429
    with settings_env({"REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": "1.0"}):
        _, job_ids, _ = new_batch(org_id, count=3, settings={})
        states = _run_concurrently(job_ids)
    assert all(state.is_completed() for state in states), states
    accounts = _account_times(sandbox)
    assert len(accounts) == 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(accounts)]
    assert min(gaps) >= 1.0, gaps
    # the queue did the spacing: the platform never had to refuse an account creation
    refused = [
        r
        for r in sandbox.requests()
        if r["step"] == "account_registration" and r["outcome"] != "performed"
    ]
    assert refused == []


def test_waiting_for_the_turn_longer_than_the_step_timeout_is_not_a_failure(
    org_id, sandbox
) -> None:
    # the account step may take 0.6 s; the fourth restaurant waits about 3 s for its turn
    sandbox.set_account_spacing(1.0)
    limit = {"REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": "1.0", "REGBATCH_STEP_TIMEOUT_SCALE": "0.005"}
    with settings_env(limit):
        _batch_id, job_ids, _ = new_batch(org_id, count=4, settings={})
        states = _run_concurrently(job_ids)
    assert all(state.is_completed() for state in states), states
    with session_scope() as session:
        attempts = [
            row.attempts
            for row in session.query(JobStep).filter(
                JobStep.job_id.in_(job_ids), JobStep.step_key == "account_registration"
            )
        ]
    assert attempts == [1, 1, 1, 1]  # waiting was never an attempt, let alone a failed one
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(_account_times(sandbox))]
    assert len(gaps) == 3 and min(gaps) >= 1.0, gaps
    # (that the queue never idles is a timing goal: bench/batch_bench.py --account-spacing-s)
