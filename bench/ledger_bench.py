"""The ledger's own CPU: each of a restaurant's transactions, run one after the other.

No Prefect, no HTTP: N jobs of one batch go through what the runner writes for them (the job's
start, 12 x the attempt's start and its outcome, the job's end), each call one transaction as
`runner.ledger.transact` runs it, and the CPU this process spent in each kind is printed per
transaction and per restaurant; then what the read of the batch's pause or cancel request
(`requested_action`) costs in a transaction of its own. CPU (not wall) is what the runner's share
of a 2-core machine pays; PostgreSQL's own CPU is not counted.

    .venv/bin/python bench/ledger_bench.py [--n 100]

To compare two versions, run it from each checkout (PYTHONPATH=that checkout).

`--group K` also runs the same writes for another N jobs with K jobs' writes of one kind in one
transaction (the same functions, one after the other in one session, no savepoint): what a
group commit of concurrent restaurants' writes could save at most, each group full;
`--savepoints` puts each write in a savepoint of its own (so one refused write would not undo
the others').
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_schema import bench_schema

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="restaurants (jobs)")
    parser.add_argument("--group", type=int, default=0, help="also K jobs' writes per transaction")
    parser.add_argument(
        "--savepoints", action="store_true", help="with --group: each write in a savepoint"
    )
    args = parser.parse_args()
    with bench_schema("regbatch_ledger_bench"):
        run(args.n, args.group, args.savepoints)


def run(n: int, group: int, savepoints: bool) -> None:
    """The ledger's writes for `n` restaurants, timed, in the bench's migrated schema."""
    from regbatch.db import batches, lifecycle
    from regbatch.db import steps as ledger
    from regbatch.db.engine import session_scope
    from regbatch.db.models import Job
    from regbatch.db.organisations import create_organisation
    from regbatch.db.restaurants import import_restaurants

    template = json.loads((ROOT / "examples" / "restaurants.json").read_text())[0]
    rows = []
    for i in range(n * (2 if group else 1)):
        row = {**template, "name": f"Ledger {i:05d}", "email": f"l{i}-{secrets.token_hex(2)}@x.io"}
        row.pop("subdomain", None)
        rows.append(row)
    with session_scope() as session:
        org = create_organisation(session, f"ledger-bench-{secrets.token_hex(3)}").id
        ids = [r.id for r in import_restaurants(session, org, rows)]
        batch = batches.create_batch(
            session, organisation_id=org, name="ledger", restaurant_ids=ids
        )
        jobs = list(session.scalars(select(Job.id).where(Job.batch_id == batch.id)))
    with session_scope() as session:
        lease = lifecycle.begin_run(session, batch.id, "ledger-bench", lease_seconds=3600).lease
    assert lease is not None

    cpu: dict[str, float] = {}
    count: dict[str, int] = {}

    def timed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.process_time()
        with session_scope() as session:
            result = fn(session, *args)
        cpu[name] = cpu.get(name, 0.0) + time.process_time() - start
        count[name] = count.get(name, 0) + 1
        return result

    for job_id in jobs[:n]:
        plan = timed("begin_job", ledger.begin_job, lease, job_id)
        for spec in plan.graph.steps:
            timed("start_attempt", ledger.start_attempt, lease, job_id, spec.key)
            timed("record_completed", ledger.record_completed, lease, job_id, spec.key, {"id": 1})
        timed("finish_job", ledger.finish_job, lease, job_id)
    print(f"ledger CPU, {n} restaurants x 12 steps, PostgreSQL, one transaction per call")
    for name in cpu:
        print(f"  {name:<18} {1e6 * cpu[name] / count[name]:7.0f} us per transaction")
    print(f"  per restaurant     {1e3 * sum(cpu.values()) / n:7.1f} ms")
    for _ in range(n):
        timed("requested_action", ledger.requested_action, lease)
    print(
        f"  requested_action   {1e6 * cpu['requested_action'] / count['requested_action']:7.0f}"
        " us per transaction (the read of a pause or cancel, not in the sum above)"
    )
    if group:
        spent = grouped(jobs[n:], group, lease, plan.graph.steps, savepoints)
        how = "each in a savepoint" if savepoints else "no savepoint"
        print(f"the same, {group} jobs' writes of a kind per transaction ({how})")
        print(f"  per restaurant     {1e3 * spent / n:7.1f} ms")


def grouped(jobs: list[Any], group: int, lease: Any, steps: Any, savepoints: bool) -> float:
    """CPU seconds for the jobs' writes, `group` jobs' writes of one kind per transaction."""
    from regbatch.db import steps as ledger
    from regbatch.db.engine import session_scope

    start = time.process_time()
    for first in range(0, len(jobs), group):
        chunk = jobs[first : first + group]
        writes: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [(ledger.begin_job, ())]
        for spec in steps:
            writes += [(ledger.start_attempt, (spec.key,))]
            writes += [(ledger.record_completed, (spec.key, {"id": 1}))]
        writes += [(ledger.finish_job, ())]
        for fn, args in writes:
            with session_scope() as session:
                for job_id in chunk:
                    if savepoints:
                        with session.begin_nested():
                            fn(session, lease, job_id, *args)
                    else:
                        fn(session, lease, job_id, *args)
    return time.process_time() - start


if __name__ == "__main__":
    main()
