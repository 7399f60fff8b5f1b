"""Does the shape of a step's task cost Prefect more than a no-op task? Interleaved, one process.

Each round runs N subflows of 12 async tasks (the step graph's levels, c at once, no sleep),
once per task shape, and prints this process's CPU per subflow (Prefect's client: engine,
events, logs, API calls; no database, no HTTP of ours):

* floor     `task(number: int) -> int`, as bench/prefect_floor.py runs it
* params    our step task's parameters and result: a Lease (a pydantic model) and a job UUID in,
            a dict out
* retries   the same with a step's retry policy: 3 retries, a delay list, a retry condition,
            a task run name
* step      the same, called as regbatch calls a step: untagged, `return_state=True`, then the
            state's result

    .venv/bin/python bench/task_shapes.py --n 60 --rounds 3 --start-server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_bench import add_server_arguments, start_server, use_bench_environment
from prefect_floor import graph_levels

SHAPES = ("floor", "params", "retries", "step")
Call = Callable[[int, Any, uuid.UUID], Awaitable[Any]]


def step_calls() -> dict[str, Call]:
    """Each shape's task, as the restaurant's flow calls it."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    from regbatch.lease import Lease
    from regbatch.runner.prefect_runs import untagged

    result = {"restaurant_id": "r-1", "status": "ok", "url": "https://platform/r-1", "n": 3}
    plain: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
    with_retries = {
        **plain,
        "retries": 3,
        "retry_delay_seconds": [1.0, 2.0, 4.0],
        "retry_jitter_factor": None,
        "retry_condition_fn": lambda task, run, state: False,
        "task_run_name": "Menu import",
    }

    @task(**plain)
    async def floor(number: int) -> int:
        return number

    def shaped(options: dict[str, Any]) -> Any:
        @task(**options)
        async def step(lease: Lease, job_id: uuid.UUID) -> dict[str, Any]:
            return dict(result)

        return step

    params, retries = shaped(plain), shaped(with_retries)

    async def as_regbatch(number: int, lease: Any, job_id: uuid.UUID) -> Any:
        with untagged():
            state = await retries(lease, job_id, return_state=True)
        return await state.aresult()

    return {
        "floor": lambda number, lease, job_id: floor(number),
        "params": lambda number, lease, job_id: params(lease, job_id),
        "retries": lambda number, lease, job_id: retries(lease, job_id),
        "step": as_regbatch,
    }


def build_flows(calls: dict[str, Call]) -> Any:
    from prefect import flow

    from regbatch.lease import Lease

    levels = graph_levels()

    @flow(persist_result=False)
    async def restaurant(number: int, shape: str) -> int:
        lease = Lease(batch_id=uuid.uuid4(), owner="task-shapes", token=1)
        job_id = uuid.uuid4()
        for width in levels:
            await asyncio.gather(*(calls[shape](i, lease, job_id) for i in range(width)))
        return number

    @flow(persist_result=False)
    async def batch(shape: str, n: int, c: int) -> None:
        semaphore = asyncio.Semaphore(c)

        async def one(number: int) -> None:
            async with semaphore:
                await restaurant(number, shape, return_state=True)

        await asyncio.gather(*(one(i) for i in range(n)))

    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="subflows per shape and round")
    parser.add_argument("--c", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    add_server_arguments(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="regbatch-task-shapes-"))
    use_bench_environment(tmp)
    server = None
    if args.start_server or args.scaled_server:
        server = start_server(args, tmp)
        os.environ["PREFECT_API_URL"] = server.url
    elif not os.environ.get("PREFECT_API_URL"):
        raise SystemExit("set PREFECT_API_URL, or pass --start-server or --scaled-server")
    try:
        batch = build_flows(step_calls())
        asyncio.run(batch("floor", 5, args.c))  # warm-up, not counted
        print(f"CPU of this process per subflow of 12 tasks, N={args.n}, c={args.c}")
        for number in range(1, args.rounds + 1):
            for shape in SHAPES:
                time.sleep(3)  # the previous shape's events and logs are shipped
                cpu, wall = time.process_time(), time.perf_counter()
                asyncio.run(batch(shape, args.n, args.c))
                time.sleep(2)  # and this one's, counted with it
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall - 2
                print(
                    f"round {number}  {shape:8s} {1000 * cpu / args.n:6.1f} ms per subflow "
                    f"(wall {wall:5.1f} s)",
                    flush=True,
                )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
