"""The batch dispatcher with an in-memory ledger: limits, requeues, breaker, pause, cancel, and
a lost lease. No Prefect, no database: each restaurant is driven by `JobRun` with scripted steps
(tests/unit/test_orchestration_restaurant.py), or by a fake run that fails to start."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest

from regbatch.batch_rules import BreakerPolicy
from regbatch.errors import PermanentPlatformError
from regbatch.flows import dispatch
from regbatch.flows.dispatch import Dispatcher, Outcome
from regbatch.flows.restaurant import JobRun
from regbatch.lease import Lease
from regbatch.ledger import JobRef
from regbatch.runner.lease import LeaseKeeper
from regbatch.statuses import BatchStatus, JobStatus, RequestedAction
from regbatch.steps import StepKey
from tests.unit.conftest import make_config
from tests.unit.fake_ledger import FakeBatch, FakeLedger
from tests.unit.test_orchestration_restaurant import Script, Steps

pytestmark = pytest.mark.anyio


class Reporter:
    def __init__(self) -> None:
        self.finished: list[int] = []

    async def job_finished(self, finished: int) -> None:
        self.finished.append(finished)

    async def refresh_table(self, force: bool = False) -> None:
        return None


class Restaurants:
    """Runs a dispatched job as the restaurant subflow does, counting how many run at once."""

    def __init__(self, ledger: FakeLedger, scripts: dict[int, Script] | None = None) -> None:
        self.ledger, self.scripts = ledger, scripts or {}
        self.running = self.most_at_once = 0
        self.started: list[int] = []

    async def __call__(self, job: JobRef, lease: Lease) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.append(job.position)
        try:
            plan = await self.ledger.begin_job(lease, job.id)
            fake = self.ledger.jobs[job.id]
            steps = Steps(self.ledger, lease, fake, dict(self.scripts.get(job.position, {})))
            run = JobRun(self.ledger, lease, plan, steps)
            await run.drive()
            await run.end()
        finally:
            self.running -= 1


async def _dispatch(
    ledger: FakeLedger,
    batch: FakeBatch,
    run_job: Any,
    limit: int = 3,
    on_stop: Any = None,
    lease_seconds: float = 30.0,
) -> tuple[Outcome, list[tuple[str, str]]]:
    start = await ledger.begin_run(batch.id, "tests", "tests", None)
    assert start.lease is not None
    tripped: list[tuple[str, str]] = []
    async with LeaseKeeper(ledger, start.lease, lease_seconds) as keeper:
        dispatcher = Dispatcher(
            ledger,
            keeper,
            batch.name,
            limit,
            run_job,
            Reporter(),
            on_stop=on_stop,
            on_breaker=lambda _id, name, reason: tripped.append((name, reason)),
        )
        outcome = await dispatcher.run(await ledger.unfinished_jobs(batch.id))
    return outcome, tripped


def _fails_at_account() -> Script:
    async def refused() -> Any:
        raise PermanentPlatformError("account_registration failed: 400 INVALID_EMAIL")

    return {StepKey.ACCOUNT_REGISTRATION: refused}


async def test_every_job_runs_with_at_most_limit_at_once() -> None:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 7)
    restaurants = Restaurants(ledger)
    outcome, _ = await _dispatch(ledger, batch, restaurants, limit=3)
    assert outcome.stopped is None
    assert restaurants.most_at_once == 3
    assert sorted(restaurants.started) == list(range(7))
    assert {job.status for job in ledger.jobs_of(batch.id)} == {JobStatus.COMPLETED}


async def test_a_job_that_could_not_start_is_requeued_not_failed(monkeypatch) -> None:
    monkeypatch.setattr(dispatch, "BACKOFF_S", (0.01, 0.01))
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 2)
    restaurants = Restaurants(ledger)
    refusals: Counter[uuid.UUID] = Counter()

    async def flaky(job: JobRef, lease: Lease) -> None:
        if refusals[job.id] < 2:  # e.g. Prefect answered 503 when asked for the subflow
            refusals[job.id] += 1
            raise RuntimeError("503 Service Unavailable")
        await restaurants(job, lease)

    outcome, _ = await _dispatch(ledger, batch, flaky)
    assert outcome.stopped is None
    assert outcome.requeued == Counter({job.id: 2 for job in ledger.jobs_of(batch.id)})
    assert [job.dispatches for job in ledger.jobs_of(batch.id)] == [3, 3]
    assert {job.status for job in ledger.jobs_of(batch.id)} == {JobStatus.COMPLETED}


async def test_a_job_that_never_starts_pauses_the_batch_with_the_reason(monkeypatch) -> None:
    monkeypatch.setattr(dispatch, "BACKOFF_S", (0.0,))
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 1)

    async def never(job: JobRef, lease: Lease) -> None:
        raise RuntimeError("the work pool has no worker")

    outcome, _ = await _dispatch(ledger, batch, never)
    assert outcome.stopped == "orchestration"
    assert "could not be run after 5 orchestration retries" in str(outcome.reason)
    assert "(the last: the work pool has no worker)" in str(outcome.reason)
    assert ledger.jobs_of(batch.id)[0].status == JobStatus.PENDING  # never marked failed


async def test_the_breaker_stops_dispatching_when_most_finished_jobs_failed() -> None:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 8, BreakerPolicy(threshold=0.5, min_finished=3))
    restaurants = Restaurants(ledger, {p: _fails_at_account() for p in range(8)})
    outcome, tripped = await _dispatch(ledger, batch, restaurants, limit=1)
    assert outcome.stopped == "breaker"
    assert tripped and "3 of 3" in tripped[0][1]
    assert restaurants.started == [0, 1, 2]  # nothing dispatched after the trip
    assert batch.requested_action == RequestedAction.PAUSE


async def test_a_pause_stops_dispatching_and_running_jobs_hold() -> None:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 6)

    async def pause_now() -> Any:
        ledger.ask(batch.id, RequestedAction.PAUSE)
        return {"account_id": "a", "user_id": "u", "email": "e"}

    restaurants = Restaurants(ledger, {0: {StepKey.ACCOUNT_REGISTRATION: pause_now}})
    outcome, _ = await _dispatch(ledger, batch, restaurants, limit=2)
    assert outcome.stopped == "pause"
    assert restaurants.started == [0, 1]
    statuses = [job.status for job in ledger.jobs_of(batch.id)]
    assert statuses[2:] == [JobStatus.PENDING] * 4
    assert JobStatus.IN_PROGRESS not in statuses


async def test_a_cancel_stops_dispatching_and_tells_the_runner() -> None:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 4)
    told: list[str] = []

    async def cancel_now() -> Any:
        ledger.ask(batch.id, RequestedAction.CANCEL)
        return {"account_id": "a", "user_id": "u", "email": "e"}

    async def on_stop(reason: str) -> None:
        told.append(reason)

    restaurants = Restaurants(ledger, {0: {StepKey.ACCOUNT_REGISTRATION: cancel_now}})
    outcome, _ = await _dispatch(ledger, batch, restaurants, limit=1, on_stop=on_stop)
    assert outcome.stopped == "cancel" and told == ["cancel"]
    assert ledger.jobs_of(batch.id)[0].status == JobStatus.CANCELLED
    assert restaurants.started == [0]


async def test_a_lost_lease_cancels_every_running_job_at_once() -> None:
    ledger = FakeLedger()
    batch = ledger.add_batch(make_config(), 4)
    stopped: list[int] = []
    started = asyncio.Event()

    async def long_job(job: JobRef, lease: Lease) -> None:
        try:
            started.set()
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(job.position)
            raise

    async def take_over_soon() -> None:
        await started.wait()
        ledger.take_over(batch.id)  # the heartbeat finds out within a third of the lease

    taking = asyncio.create_task(take_over_soon())
    outcome, _ = await asyncio.wait_for(
        _dispatch(ledger, batch, long_job, limit=2, lease_seconds=0.6), timeout=10
    )
    await taking
    assert outcome.stopped == "lease_lost"
    assert "no longer this runner's" in str(outcome.reason)
    assert sorted(stopped) == [0, 1]
    assert batch.status == BatchStatus.IN_PROGRESS  # left for the new owner, untouched
