"""Account creation is spaced by a Prefect global rate limit, across concurrent runs."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime

import pytest

from flows.restaurant import register_restaurant
from regbatch.settings import reset_settings
from tests.flows.conftest import new_batch, run

pytestmark = pytest.mark.flow


def test_concurrent_runs_never_create_accounts_faster_than_the_limit(
    org_id, sandbox, monkeypatch
) -> None:
    monkeypatch.setenv("REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS", "1.0")
    reset_settings()
    sandbox.set_account_spacing(1.0)  # the platform refuses faster creations with a 429
    _, job_ids, _ = new_batch(org_id, count=3, settings={})
    states: list = []
    threads = [
        threading.Thread(
            target=lambda j=job_id: states.append(run(register_restaurant(j, return_state=True)))
        )
        for job_id in job_ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reset_settings()
    assert all(state.is_completed() for state in states), states
    accounts = sorted(
        datetime.fromisoformat(e["at"])
        for e in sandbox.ledger()
        if e["step"] == "account_registration"
    )
    assert len(accounts) == 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(accounts)]
    assert min(gaps) >= 0.9, gaps
    # the limiter did the spacing: the platform never had to refuse a request
    assert sandbox.stats()["requests"] == len(sandbox.ledger())
