"""Helpers of the REST API tests: callers with real API keys, row counts, batches in any state,
and the `registration-batch` deployment registered on the session's Prefect server (not served:
a started batch stays `pending` with a scheduled flow run)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import func, select, update

from regbatch.db import batches as batch_data
from regbatch.db.engine import session_scope
from regbatch.db.models import (
    Batch,
    BatchTemplate,
    Job,
    JobStep,
    OperationLog,
    WebhookSubscription,
)
from regbatch.db.types import utcnow
from regbatch.services.api_keys import create_api_key
from regbatch.statuses import JobStatus
from tests.factories import make_restaurants

COUNTED = (Batch, Job, JobStep, OperationLog, BatchTemplate, WebhookSubscription)
T = TypeVar("T")


def concurrently(count: int, call: Callable[[int], T]) -> list[T | BaseException]:
    """`call(i)` in `count` threads released together; each one's result or exception."""
    barrier = threading.Barrier(count)

    def one(index: int) -> T | BaseException:
        barrier.wait(timeout=30)
        try:
            return call(index)
        except Exception as exc:  # the caller asserts on what each thread met
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def all_returned(outcomes: list[T | BaseException]) -> list[T]:
    """The results of `concurrently`, raising the first exception a thread met."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


def bearer(organisation_id: uuid.UUID, name: str = "tests") -> dict[str, str]:
    """Headers of a caller of the organisation, with a new real API key."""
    key = create_api_key(organisation_id, name)
    return {"Authorization": f"Bearer {key.api_key}"}


def row_counts() -> dict[str, int]:
    """How many rows each table the API writes holds."""
    with session_scope() as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in COUNTED
        }


def new_draft(organisation_id: uuid.UUID, count: int = 2, **options: Any) -> uuid.UUID:
    """A draft batch of `count` fresh restaurants."""
    with session_scope() as session:
        restaurant_ids = make_restaurants(session, organisation_id, count)
        return batch_data.create_batch(
            session,
            organisation_id=organisation_id,
            name=options.pop("name", "rest test"),
            restaurant_ids=restaurant_ids,
            **options,
        ).id


def set_status(batch_id: uuid.UUID, status: str, **values: Any) -> None:
    """Put the batch in `status` directly (as a runner would have), with a live lease when
    in progress."""
    if status == "in_progress":
        values.setdefault("lease_owner", "tests")
        values.setdefault("lease_expires_at", utcnow() + timedelta(minutes=5))
        values.setdefault("started_at", utcnow())
    with session_scope() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(status=status, **values))


def finish_with_failure(batch_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """End the batch `failed`: its first job completed, its second failed at step 7.

    Returns (completed job, failed job). Step results carry platform ids like real ones.
    """
    now = utcnow()
    with session_scope() as session:
        jobs = list(session.scalars(batch_data.select_jobs(batch_id)))
        done, failed = jobs[0], jobs[1]
        for job, status in ((done, JobStatus.COMPLETED), (failed, JobStatus.FAILED)):
            job.status = status
            job.started_at = now - timedelta(seconds=90)
            job.completed_at = now
        session.execute(
            update(JobStep)
            .where(JobStep.job_id.in_([done.id, failed.id]))
            .values(
                status="completed",
                attempts=1,
                started_at=now - timedelta(seconds=10),
                completed_at=now,
                duration_ms=10_000,
            )
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id.in_([done.id, failed.id]), JobStep.step_number == 5)
            .values(
                result_data={
                    "platform_restaurant_id": "pr_123",
                    "subdomain": "=cmd|calc",
                    "urls": {"ordering": "https://x.example/order", "admin": "https://a.x"},
                }
            )
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == done.id, JobStep.step_number == 8)
            .values(result_data={"payment_id": "p1", "stripe_connect_url": "https://stripe/c"})
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == failed.id, JobStep.step_number == 7)
            .values(status="failed", attempts=4, error_message="services refused: no pickup")
        )
        batch_data.recompute_counters(session, batch_id)
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(status="failed", started_at=now - timedelta(seconds=100), completed_at=now)
        )
        return done.id, failed.id


@pytest.fixture(scope="session")
def batch_deployment(prefect_server: str) -> Iterator[str]:
    """The `registration-batch` deployment, registered (not served) on the Prefect server."""
    from prefect.deployments.runner import RunnerDeployment

    from regbatch.flows.batch import registration_batch

    # to_deployment is sync here; its hints also admit the coroutine of an async caller
    deployment = cast(RunnerDeployment, registration_batch.to_deployment(name="registration-batch"))
    deployment.apply()
    yield "registration-batch/registration-batch"


def flow_run_state(flow_run_id: str) -> tuple[str, dict[str, Any]]:
    """(state type, parameters) of a flow run on the Prefect server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(flow_run_id))
    assert run.state is not None
    return str(run.state.type.value), dict(run.parameters)
