"""REST read paths on PostgreSQL: a batch's detail page, the batch list, and the export's memory.

Builds, in a fresh schema, a 1,000-restaurant batch whose steps are in mixed states (a quarter
completed with results, a quarter failed at step 7, a quarter running step 5, a quarter
pending), 999 more batches of one restaurant each, and a 5,000-restaurant batch, all through the
db/ functions and plain updates (no runner). Then prints:

- p50/p95 of `GET /registration-batches/{id}?limit=100` (one page of 100 jobs with their steps;
  goal p50 <= 50 ms) and of the same page with `include=results`;
- p50/p95 of `GET /registration-batches` (50 of the 1,000 batches, with total_count and current
  steps; goal p50 <= 20 ms);
- the export's peak traced memory (tracemalloc) while its pieces are produced and dropped, CSV
  and JSON, at 1,000 and 5,000 restaurants (goal: flat), beside the body held whole.

Requests go through the ASGI app in process (Starlette's TestClient), so the figures include
the app and the database, not a network. Needs PostgreSQL (REGBATCH_BENCH_DATABASE_URL, default
the local `test` database; a schema of its own, dropped at the end).

    .venv/bin/python bench/rest_bench.py [--requests 40] [--detail-only]

`--detail-only` builds the 1,000-restaurant batch alone and reads its detail page (quick, for
an A/B of two versions). Each row also gives the CPU per request of this process.
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_schema import bench_schema

ROOT = Path(__file__).resolve().parents[1]


def restaurants(organisation_id: uuid.UUID, n: int, tag: str) -> list[uuid.UUID]:
    from regbatch.db.engine import session_scope
    from regbatch.db.restaurants import import_restaurants

    samples = json.loads((ROOT / "examples" / "restaurants.json").read_text())
    rows = []
    for i in range(n):
        row = copy.deepcopy(samples[i % len(samples)])
        row.pop("subdomain", None)
        row.update(name=f"Bench {tag} {i}", email=f"owner-{tag}-{i}@bench.example.com")
        rows.append(row)
    with session_scope() as session:
        return [r.id for r in import_restaurants(session, organisation_id, rows)]


def make_batch(organisation_id: uuid.UUID, ids: list[uuid.UUID], name: str) -> uuid.UUID:
    from regbatch.db.batches import create_batch
    from regbatch.db.engine import session_scope

    with session_scope() as session:
        return create_batch(
            session,
            organisation_id=organisation_id,
            name=name,
            restaurant_ids=ids,
            max_size=len(ids),
        ).id


def mix_states(batch_id: uuid.UUID) -> None:
    """A quarter of the jobs completed (with results), failed at 7, running 5, pending."""
    from regbatch.db.batches import recompute_counters, select_jobs
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Batch, Job, JobStep
    from regbatch.db.types import utcnow

    now = utcnow()
    result = {
        "platform_restaurant_id": "pr_" + "x" * 20,
        "subdomain": "bench",
        "urls": {"ordering": "https://bench.example/order", "admin": "https://a.example"},
        "notes": "y" * 300,
    }
    with session_scope() as session:
        jobs = [j.id for j in session.scalars(select_jobs(batch_id))]
        quarters = [jobs[i::4] for i in range(4)]
        done, failed, running, _ = quarters
        step = JobStep.step_number
        for ids, status in ((done, "completed"), (failed, "failed"), (running, "in_progress")):
            session.execute(
                update(Job)
                .where(Job.id.in_(ids))
                .values(status=status, started_at=now - timedelta(minutes=5))
            )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id.in_(done + failed + running), step <= 4)
            .values(status="completed", attempts=1, completed_at=now, result_data=result)
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id.in_(done + failed), step > 4)
            .values(status="completed", attempts=1, completed_at=now, result_data=result)
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id.in_(failed), step == 7)
            .values(status="failed", attempts=4, error_message="services refused: no pickup")
        )
        session.execute(
            update(JobStep)
            .where(JobStep.job_id.in_(running), step == 5)
            .values(status="in_progress", attempts=1)
        )
        recompute_counters(session, batch_id)
        session.execute(update(Batch).where(Batch.id == batch_id).values(status="in_progress"))


def timings(call: Callable[[], Any], n: int) -> tuple[float, float, float]:
    """(p50, p95, CPU per call) in milliseconds of `n` calls after two warm-ups; the CPU is
    this whole process's (the app and the test client)."""
    for _ in range(2):
        call()
    samples = []
    cpu = time.process_time()
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / n
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return statistics.median(samples), p95, cpu_ms


def export_peak(batch_id: uuid.UUID, fmt: str, streamed: bool) -> tuple[float, int]:
    """(peak traced MB, body bytes) of exporting the batch: pieces dropped as they come
    (`streamed`, what the REST API does) or the body held whole."""
    from regbatch.services.exporting import export_batch, stream_export

    for _ in stream_export(batch_id, None, fmt)[1]:
        pass  # warm: first-use allocations (plugin registry, compiled queries) are not the export's
    tracemalloc.start()
    size = 0
    if streamed:
        for piece in stream_export(batch_id, None, fmt)[1]:
            size += len(piece)
    else:
        size = len(export_batch(batch_id, None, fmt)[1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6, size


def measure(requests: int, detail_only: bool) -> None:
    from fastapi.testclient import TestClient

    from regbatch.api.rest import create_app
    from regbatch.db.engine import session_scope
    from regbatch.services.api_keys import create_api_key
    from regbatch.services.catalog import new_organisation

    org = new_organisation(f"rest bench {secrets.token_hex(3)}")
    auth = {"Authorization": f"Bearer {create_api_key(org, 'bench').api_key}"}
    started = time.perf_counter()
    big = make_batch(org, restaurants(org, 1000, "a"), "Bench 1,000")
    mix_states(big)
    huge = big
    if not detail_only:
        singles = restaurants(org, 999, "s")
        for i, rid in enumerate(singles):
            make_batch(org, [rid], f"Bench single {i}")
        huge = make_batch(org, restaurants(org, 5000, "h"), "Bench 5,000")
        mix_states(huge)
    with session_scope() as session:  # the statistics autovacuum keeps on a live database
        session.execute(text("ANALYZE"))
    made = "the 1,000-restaurant batch" if detail_only else "1,000 batches + one of 5,000"
    print(f"set-up: {time.perf_counter() - started:.0f} s ({made})")

    with TestClient(create_app()) as client:

        def get(path: str, **params: Any) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(path, headers=auth, params=params)
                response.raise_for_status()
                return response

            return call

        page = get(f"/registration-batches/{big}", limit=100)()
        print(f"detail page of 100 jobs: {len(page.content) / 1e3:.0f} KB")
        rows = [
            ("detail, 100 jobs with steps", get(f"/registration-batches/{big}", limit=100)),
            (
                "detail, 100 jobs, include=results",
                get(f"/registration-batches/{big}", limit=100, include="results"),
            ),
            ("list, 50 of 1,000 batches", get("/registration-batches")),
            ("list, include=jobs", get("/registration-batches", include="jobs")),
            (
                "list, status=draft,in_progress q=single",
                get("/registration-batches", status="draft,in_progress", q="single"),
            ),
        ]
        for label, call in rows[:1] if detail_only else rows:
            p50, p95, cpu = timings(call, requests)
            print(f"{label:42s} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   CPU {cpu:5.1f} ms")
    if detail_only:
        return

    for size, batch in ((1000, big), (5000, huge)):
        for fmt in ("csv", "json"):
            streamed, body = export_peak(batch, fmt, streamed=True)
            whole, _ = export_peak(batch, fmt, streamed=False)
            print(
                f"export {fmt:4s} {size:5d} restaurants: body {body / 1e6:5.2f} MB, "
                f"streamed peak {streamed:5.2f} MB, held whole peak {whole:6.2f} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--detail-only", action="store_true", help="only the detail page of the 1,000 batch"
    )
    args = parser.parse_args()
    with bench_schema("regbatch_rest_bench"):
        measure(args.requests, args.detail_only)


if __name__ == "__main__":
    main()
