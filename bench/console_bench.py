"""The operations console's two polled screens on a big organisation: how long the batch
detail's live fragment (progress, histogram, one page of the restaurant x step matrix) and the
batches list take to answer.

Builds, in a PostgreSQL schema of its own (migrated with Alembic, dropped at the end): one
organisation with 1,000 restaurants, a batch of all of them whose 12,000 steps are in mixed
states (completed, failed with the later ones skipped, running, retrying, pending), and 1,000
more batches for the list. Then asks the console, in-process over ASGI (httpx through FastAPI's
TestClient: routing, the session check, the queries and the template rendering; no network),
and prints p50/p95 of each:

    .venv/bin/python bench/console_bench.py [--database-url URL] [--rounds 200]

Goals: matrix fragment p50 <= 50 ms, batches list p50 <= 20 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, insert, select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_schema(base_url: str, schema: str) -> str:
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}"


def drop_schema(base_url: str, schema: str) -> None:
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def build(restaurants: int, batches: int) -> tuple[uuid.UUID, uuid.UUID, str]:
    """(organisation, the big batch, an API key) with steps in mixed states."""
    from regbatch.db import batches as batch_data
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Batch
    from regbatch.services.api_keys import create_api_key
    from tests.factories import make_org, make_restaurants

    with session_scope() as session:
        org_id = make_org(session)
        ids = make_restaurants(session, org_id, restaurants)
        big = batch_data.create_batch(
            session,
            organisation_id=org_id,
            name="Bench 1000",
            restaurant_ids=ids,
            execution_mode="parallel",
            concurrency=25,
            max_size=restaurants,
        ).id
    with session_scope() as session:
        _mix_states(session, big)
        batch_data.recompute_counters(session, big)
        session.execute(update(Batch).where(Batch.id == big).values(status="in_progress"))
        session.execute(insert(Batch), [_batch_row(org_id, i) for i in range(batches)])
    return org_id, big, create_api_key(org_id, "bench").api_key


FAILURE = "services refused: no pickup address; set restaurants.address"


def _mix_states(session: Any, batch_id: uuid.UUID) -> None:
    """Positions 0-599 completed; 600-699 failed at step 7 (8-12 skipped); 700-749 running at
    step 5 (retrying from 740); the rest pending."""
    from regbatch.db.models import Job, JobStep

    def jobs(lo: int, hi: int) -> Any:
        return select(Job.id).where(Job.batch_id == batch_id, Job.position >= lo, Job.position < hi)

    def steps(lo: int, hi: int, *where: Any, **values: Any) -> None:
        session.execute(
            update(JobStep).where(JobStep.job_id.in_(jobs(lo, hi)), *where).values(**values)
        )

    steps(0, 700, status="completed", attempts=1, duration_ms=900)
    steps(600, 700, JobStep.step_number == 7, status="failed", attempts=4, error_message=FAILURE)
    steps(600, 700, JobStep.step_number > 7, status="skipped", skip_reason="blocked by step 7")
    steps(700, 750, JobStep.step_number < 5, status="completed", attempts=1)
    steps(700, 740, JobStep.step_number == 5, status="in_progress", attempts=1)
    steps(740, 750, JobStep.step_number == 5, status="retrying", attempts=2, error_message="503")
    for lo, hi, values in (
        (0, 600, {"status": "completed"}),
        (600, 700, {"status": "failed", "error_message": f"07-services_configuration: {FAILURE}"}),
        (700, 750, {"status": "in_progress", "current_step": 5}),
    ):
        session.execute(update(Job).where(Job.id.in_(jobs(lo, hi))).values(**values))


def _batch_row(org_id: uuid.UUID, i: int) -> dict[str, object]:
    statuses = ["completed", "failed", "cancelled", "paused", "draft"]
    return {
        "id": uuid.uuid4(),
        "organisation_id": org_id,
        "name": f"Weekly hot leads {i:04d}",
        "status": statuses[i % len(statuses)],
        "execution_mode": "parallel",
        "concurrency": 5,
        "total_restaurants": 10,
        "completed_restaurants": 7,
        "failed_restaurants": 2,
        "cancelled_restaurants": 0,
        "settings": {},
        "breaker_threshold": 0.5,
        "breaker_min_finished": 3,
    }


def timed(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    for _ in range(5):  # warm-up: connections, template compilation
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def measure(batch_id: uuid.UUID, key: str, rounds: int) -> None:
    from fastapi.testclient import TestClient

    from regbatch.api.rest import create_app

    with TestClient(create_app(), follow_redirects=False) as client:
        form = client.get("/console/sign-in").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        client.post("/console/sign-in", data={"api_key": key, "csrf_token": token[1]})

        def get(path: str) -> Callable[[], object]:
            def call() -> object:
                answer = client.get(path)
                assert answer.status_code == 200, answer.status_code
                return answer

            return call

        cases = [
            (
                "matrix fragment (1,000 restaurants, page of 100 x 12 steps)",
                f"/console/batches/{batch_id}/live",
            ),
            (
                "matrix fragment, failed restaurants only",
                f"/console/batches/{batch_id}/live?show=failed",
            ),
            ("batches list (1,001 batches, page of 50, newest first)", "/console/batches"),
            (
                "batches list searched by name and sorted by name",
                "/console/batches?q=hot+leads+09&sort=name&order=asc",
            ),
        ]
        for label, path in cases:
            p50, p95 = timed(get(path), rounds)
            size = len(client.get(path).content)
            print(f"{label:62s} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   ({size / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--restaurants", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=1000)
    args = parser.parse_args()
    schema = f"regbatch_console_bench_{secrets.token_hex(3)}"
    url = make_schema(args.database_url, schema)
    os.environ.update(
        REGBATCH_DATABASE_URL=url,
        REGBATCH_DATA_DIR=tempfile.mkdtemp(prefix="console-bench-"),
        REGBATCH_SECRET_KEY=Fernet.generate_key().decode(),
        REGBATCH_MAX_BATCH_SIZE=str(args.restaurants),
        PREFECT_API_URL="http://127.0.0.1:9/api",  # never called: only the UI link is read
    )
    try:
        from regbatch.db import migrate

        migrate.upgrade(url)
        started = time.perf_counter()
        _, batch_id, key = build(args.restaurants, args.batches)
        print(f"built in {time.perf_counter() - started:.1f} s; {args.rounds} rounds each")
        measure(batch_id, key, args.rounds)
    finally:
        from regbatch.db.engine import dispose_engines

        dispose_engines()
        drop_schema(args.database_url, schema)


if __name__ == "__main__":
    main()
