"""What the runner's read after each job's end costs as the batch grows: `settle_job`.

After a restaurant's job ends, the runner settles it in one transaction: the job's status, the
batch's finished count (for the progress card) and, while restaurants wait, whether the breaker
must trip (`may_trip`). This script makes batches of each size in a schema of its own, marks
all their jobs but one finished (a tenth of them failed, as plain UPDATEs, then the counters
recounted), and times `settle_job(may_trip=True)` of a finished job: wall time (PostgreSQL's
work included) and this process's CPU, per call. A cost that grows with the batch is paid once
per restaurant, so N times over a batch of N.

    .venv/bin/python bench/settle_bench.py [--sizes 200,2000,10000] [--calls 200]

To compare two versions, run it from each checkout (PYTHONPATH=that checkout).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import select, text, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_schema import bench_schema

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000,10000", help="batch sizes, comma-separated")
    parser.add_argument("--calls", type=int, default=200, help="settle_job calls per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with bench_schema("regbatch_settle_bench"):
        print(f"settle_job(may_trip=True) of a finished job, {args.calls} calls per size")
        for size in sizes:
            wall, cpu = measure(size, args.calls)
            print(f"  batch of {size:6d}: wall p50 {wall:7.2f} ms   CPU {cpu:6.2f} ms per call")


def measure(size: int, calls: int) -> tuple[float, float]:
    """(wall p50 ms, CPU ms) per settle_job call in a batch of `size` jobs, all but one finished."""
    from regbatch.db import batches, lifecycle, runner
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Job
    from regbatch.db.organisations import create_organisation
    from regbatch.db.restaurants import import_restaurants
    from regbatch.db.types import utcnow
    from regbatch.statuses import JobStatus

    template = json.loads((ROOT / "examples" / "restaurants.json").read_text())[0]
    tag = secrets.token_hex(3)
    rows = []
    for i in range(size):
        row = {**template, "name": f"Settle {i:05d}", "email": f"s{i}-{tag}@x.io"}
        row.pop("subdomain", None)
        rows.append(row)
    with session_scope() as session:
        org = create_organisation(session, f"settle-bench-{tag}").id
        ids = [r.id for r in import_restaurants(session, org, rows)]
        batch = batches.create_batch(
            session,
            organisation_id=org,
            name=f"settle {size}",
            restaurant_ids=ids,
            max_size=size,
        )
        batch_id = batch.id
    with session_scope() as session:
        lease = lifecycle.begin_run(session, batch_id, "settle-bench", lease_seconds=3600).lease
    assert lease is not None
    with session_scope() as session:
        jobs = list(
            session.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.position))
        )
        now = utcnow()
        for status, chosen in (
            (JobStatus.FAILED, jobs[1::10]),
            (JobStatus.COMPLETED, [j for i, j in enumerate(jobs[1:], 1) if i % 10 != 1]),
        ):
            session.execute(
                update(Job)
                .where(Job.id.in_(chosen))
                .values(status=status, started_at=now, completed_at=now)
            )
        batches.lock_batch(session, batch_id)
        batches.recompute_counters(session, batch_id)
        session.execute(text("ANALYZE"))
    settled = jobs[-1]
    walls: list[float] = []
    cpu = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        with session_scope() as session:
            result = runner.settle_job(session, lease, settled, may_trip=True)
        walls.append(time.perf_counter() - started)
    spent = time.process_time() - cpu
    assert result.finished == size - 1, result
    return 1e3 * statistics.median(walls), 1e3 * spent / calls


if __name__ == "__main__":
    main()
