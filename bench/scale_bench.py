"""A very large batch: N restaurants x 12 steps in one parallel batch, read while it runs.

The batch runs in this process (the runner) against the sandbox platform and a Prefect server
started for it, on PostgreSQL in a schema of its own. Meanwhile another process (a reader, as
the REST API would be) asks every 2 s for the batch's detail page (`GET
/registration-batches/{id}`, the first 100 restaurants with their steps) and its progress (`GET
.../progress`), in process over ASGI, and records how long each answer took. Then it prints:

* wall time, restaurants completed and failed, wall and runner CPU per restaurant;
* peak RSS of the runner and of the Prefect server's processes (the kernel's high-water mark);
* orchestration errors: restaurants whose subflow had to be dispatched again, flow runs that
  ended Crashed or Failed in Prefect;
* the reader's p50 / p95 / max for the detail page and the progress, and how many answers;
* how the ledger's tables grew: rows and MB (with indexes and TOAST) per table, and per 1,000
  restaurants.

    .venv/bin/python bench/scale_bench.py --n 10000 --c 25 --start-server
    .venv/bin/python bench/scale_bench.py --n 1000 --c 25 --start-server   # a shorter look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_bench import (
    add_server_arguments,
    bench_database,
    cpu_seconds,
    create_bench_batch,
    drop_bench_schema,
    peak_rss_mb,
    prepare_database,
    start_sandbox,
    start_server,
    use_bench_environment,
    use_bench_schema,
)

TABLES = [
    "restaurants",
    "registration_batch_jobs",
    "registration_jobs",
    "registration_job_steps",
    "batch_operation_logs",
]


def table_sizes() -> dict[str, tuple[int, int]]:
    """(rows, bytes with indexes and TOAST) of each ledger table in this run's schema."""
    from sqlalchemy import text

    from regbatch.db.engine import session_scope

    sizes = {}
    with session_scope() as session:
        for table in TABLES:
            rows = session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            size = session.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            sizes[table] = (int(rows), int(size))
    return sizes


def reader(batch_id: str, organisation_id: str, out: str, stop: str) -> None:
    """The reader process: the detail page and the progress every 2 s until told to stop."""
    from fastapi.testclient import TestClient

    from regbatch.api.rest import create_app
    from regbatch.services.api_keys import create_api_key

    auth = {"Authorization": f"Bearer {create_api_key(organisation_id, 'scale').api_key}"}
    timings: dict[str, list[float]] = {"detail": [], "progress": []}
    progress: list[tuple[float, Any]] = []
    started = time.monotonic()
    with TestClient(create_app()) as client:
        while not Path(stop).exists():
            for name, path, params in (
                ("detail", f"/registration-batches/{batch_id}", {"limit": 100}),
                ("progress", f"/registration-batches/{batch_id}/progress", {}),
            ):
                begin = time.perf_counter()
                response = client.get(path, headers=auth, params=params)
                timings[name].append(time.perf_counter() - begin)
                if response.status_code != 200:
                    raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
                if name == "progress":
                    progress.append((time.monotonic() - started, response.json()))
            if len(progress) % 30 == 1:  # about once a minute, for whoever watches the run
                elapsed, last = progress[-1]
                print(
                    f"  {elapsed:6.0f} s: {last['status']}, {last['finished']:,} of "
                    f"{last['total']:,} finished ({last['percent']} %); detail page "
                    f"{1000 * timings['detail'][-1]:.0f} ms, progress "
                    f"{1000 * timings['progress'][-1]:.0f} ms",
                    flush=True,
                )
            time.sleep(2)
    Path(out).write_text(json.dumps({"timings": timings, "progress": progress[-1:]}))


def count_bad_flow_runs() -> dict[str, int]:
    """Flow runs that ended Crashed or Failed in Prefect (a restaurant's end is not counted
    here: regbatch's own outcome is in the ledger; this is orchestration)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async def count() -> dict[str, int]:
        async with get_client() as client:
            return {
                kind.value: await client.count_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[kind]))
                    )
                )
                for kind in (StateType.CRASHED, StateType.FAILED)
            }

    return asyncio.run(count())


def redispatched() -> int:
    from sqlalchemy import text

    from regbatch.db.engine import session_scope

    with session_scope() as session:
        return int(
            session.execute(
                text("SELECT count(*) FROM registration_jobs WHERE dispatch_attempts > 1")
            ).scalar_one()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="restaurants")
    parser.add_argument("--c", type=int, default=25, help="concurrency")
    parser.add_argument("--latency-ms", type=float, default=0, help="sandbox latency per step")
    add_server_arguments(parser)
    parser.add_argument("--reader", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--setup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        reader(*args.reader)
        return
    if args.setup:
        setup(args.n, args.c)
        return
    if not (args.start_server or args.scaled_server):
        raise SystemExit("pass --start-server or --scaled-server")
    tmp = Path(tempfile.mkdtemp(prefix="regbatch-scale-"))
    use_bench_environment(tmp)
    os.environ["REGBATCH_MAX_BATCH_SIZE"] = str(max(args.n, 1000))  # one batch of them all
    server = start_server(args, tmp)
    os.environ["PREFECT_API_URL"] = server.url
    sandbox, sandbox_url = start_sandbox(args.latency_ms)
    os.environ["REGBATCH_PLATFORM_URL"] = sandbox_url
    try:
        run(args, server, tmp)
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        drop_bench_schema()
        os.killpg(sandbox.pid, signal.SIGTERM)
        server.stop()


def setup(n: int, c: int) -> None:
    """The child process that imports the restaurants and creates their batch; its last line
    says which, with the ledger's table sizes before the batch."""
    org_id, restaurant_ids = prepare_database(n, False)
    before = table_sizes()
    batch_id = create_bench_batch(org_id, restaurant_ids, c, False, name="scale")
    print(json.dumps({"org_id": str(org_id), "batch_id": str(batch_id), "before": before}))


def setup_apart(n: int, c: int) -> tuple[str, uuid.UUID, dict[str, tuple[int, int]]]:
    """(organisation, batch, table sizes before it), made by `setup` in a process of its own:
    importing 10,000 restaurants and merging their settings leaves hundreds of MB in a process,
    which would count as the runner's."""
    use_bench_schema()
    made = subprocess.run(
        [sys.executable, __file__, "--setup", "--n", str(n), "--c", str(c)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise SystemExit(f"the setup process failed:\n{made.stderr}")
    found = json.loads(made.stdout.strip().splitlines()[-1])
    before = {table: (rows, size) for table, (rows, size) in found["before"].items()}
    return found["org_id"], uuid.UUID(found["batch_id"]), before


async def run_flow(batch_id: uuid.UUID) -> Any:
    """The batch flow, run here as `regbatch.run_batch` runs it, then the batch's own row.

    Not `run_batch` itself: it returns every job with every step's results, a read for its
    caller (hundreds of MB at 10,000 restaurants) that is not the runner's.
    """
    from regbatch.db.engine import session_scope
    from regbatch.db.overview import batch_view
    from regbatch.flow_params import BatchRun
    from regbatch.flows.batch import registration_batch
    from regbatch.heap import claim_process
    from regbatch.run_tags import BATCH_TAG
    from regbatch.runner.prefect_runs import tagged

    claim_process()  # this process is the runner, as the CLI's or a deployment's run is
    with tagged(BATCH_TAG):
        await registration_batch(BatchRun(batch_id=batch_id, started_by="bench"), return_state=True)
    with session_scope() as session:
        return batch_view(session, batch_id, None)


def run(args: argparse.Namespace, server: Any, tmp: Path) -> None:
    n, c = args.n, args.c
    kind = "scaled server" if args.scaled_server else "server"
    print(
        f"N={n} restaurants x 12 steps, c={c}, step latency {args.latency_ms:.0f} ms, "
        f"Prefect {kind} on PostgreSQL, schema {bench_database()[1]}",
        flush=True,
    )
    started = time.monotonic()
    org_id, batch_id, before = setup_apart(n, c)
    print(
        f"{n} restaurants imported and their batch created in {time.monotonic() - started:.0f} s "
        "(in a process of their own: the runner's memory is the batch's alone)",
        flush=True,
    )
    out, stop = tmp / "reader.json", tmp / "reader.stop"
    probe = subprocess.Popen(
        [sys.executable, __file__, "--reader", str(batch_id), str(org_id), str(out), str(stop)],
        env=dict(os.environ),
    )
    cpu_before = {"runner": cpu_seconds(os.getpid(), False)} | {
        name: cpu_seconds(pid) for name, pid in server.pids.items()
    }
    begin = time.perf_counter()
    detail = asyncio.run(run_flow(batch_id))
    wall = time.perf_counter() - begin
    cpu = {"runner": cpu_seconds(os.getpid(), False) - cpu_before["runner"]} | {
        name: cpu_seconds(pid) - cpu_before[name] for name, pid in server.pids.items()
    }
    stop.touch()
    probe.wait(timeout=120)
    after = table_sizes()
    read = json.loads(out.read_text()) if out.exists() else {"timings": {}, "progress": []}
    print(
        f"batch flow          {wall:9.1f} s  status={detail.status} completed={detail.completed}"
        f"/{n} failed={detail.failed} cancelled={detail.cancelled}"
    )
    print(f"per restaurant      {1000 * wall / n:9.1f} ms wall")
    print(
        "CPU during the batch "
        + ", ".join(
            f"{name} {seconds:.0f} s ({1000 * seconds / n:.0f} ms per restaurant)"
            for name, seconds in cpu.items()
        )
    )
    runner_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS            runner {runner_peak:.0f} MB, "
        + ", ".join(f"{name} {peak_rss_mb(pid) or 0:.0f} MB" for name, pid in server.pids.items())
    )
    print(
        f"orchestration       {redispatched()} restaurants dispatched again; Prefect flow runs "
        + ", ".join(f"{k} {v}" for k, v in count_bad_flow_runs().items())
    )
    for name, values in read["timings"].items():
        if values:
            ms = sorted(1000 * v for v in values)
            print(
                f"reader: {name:<10} p50 {statistics.median(ms):6.1f} ms, "
                f"p95 {ms[int(0.95 * (len(ms) - 1))]:6.1f} ms, max {ms[-1]:6.1f} ms "
                f"({len(ms)} answers while the batch ran)"
            )
    print(f"ledger growth for {n} restaurants (rows, MB with indexes; per 1,000 restaurants):")
    for table in TABLES:
        rows = after[table][0] - before[table][0]
        mb = (after[table][1] - before[table][1]) / 2**20
        total_rows, total_mb = after[table][0], after[table][1] / 2**20
        print(
            f"  {table:<26} +{rows:>8} rows +{mb:8.1f} MB   ({1000 * rows / n:7.0f} rows, "
            f"{1000 * mb / n:6.2f} MB per 1,000)   total {total_rows} rows, {total_mb:.1f} MB"
        )


if __name__ == "__main__":
    main()
