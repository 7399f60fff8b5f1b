"""Prefect's own floor on this machine: N async subflows of 0 or 12 async tasks, c at once.

No database, no HTTP, no regbatch code: what a flow run per restaurant and a task run per step
cost by themselves, on the same kind of Prefect server the batch benchmark uses. It gives the
batch benchmark's orchestration figures their context. The 12 tasks follow the step graph's
levels (a level's tasks run together once the level before it ended, 4 levels deep) and each
sleeps --step-ms, so `--step-ms 1000 --n 200` is Prefect's own answer to the batch goal.

    .venv/bin/python bench/prefect_floor.py --n 100 --c 25 --start-server
    .venv/bin/python bench/prefect_floor.py --n 200 --c 25 --step-ms 1000 --start-server
    .venv/bin/python bench/prefect_floor.py --n 200 --c 25 --step-ms 1000 --scaled-server

--scaled-server starts Prefect's scaled server (scripts/prefect-scaled-server) instead of
`prefect server start`: Redis messaging, the services in a process of their own, --api-workers
API workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_bench import add_server_arguments, cpu_seconds, peak_rss_mb, start_server, until_idle


def graph_levels() -> list[int]:
    """How many of the twelve steps sit at each depth of the step graph ([3, 4, 4, 1] or so)."""
    from regbatch.steps import step_depths

    depths = list(step_depths().values())
    return [depths.count(d) for d in range(1, max(depths) + 1)]


async def measure(n: int, c: int, steps: int, step_s: float = 0.0) -> float:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    levels = graph_levels() if steps else []

    @task(cache_policy=NO_CACHE, persist_result=False)
    async def step(number: int) -> int:
        if step_s:
            await asyncio.sleep(step_s)
        return number

    @flow(persist_result=False)
    async def restaurant(number: int, steps: int) -> int:
        for width in levels:
            await asyncio.gather(*(step(i) for i in range(width)))
        return number

    @flow(persist_result=False)
    async def batch(n: int, c: int, steps: int) -> float:
        semaphore = asyncio.Semaphore(c)

        async def one(number: int) -> object:
            async with semaphore:
                return await restaurant(number, steps, return_state=True)

        await one(-1)  # warm-up, not timed
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start

    return await batch(n, c, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--c", type=int, default=25)
    parser.add_argument("--step-ms", type=float, default=0, help="each task sleeps this long")
    add_server_arguments(parser)
    args = parser.parse_args()
    os.environ.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        }
    )
    server = None
    if args.start_server or args.scaled_server:
        server = start_server(args, Path(tempfile.mkdtemp(prefix="regbatch-floor-")))
        os.environ["PREFECT_API_URL"] = server.url
    server_pids = server.pids if server is not None else {}
    cpu: dict[int, dict[str, float]] = {}
    try:
        walls = {}
        for steps in (0, 12):
            before = cpu_now(server_pids)
            walls[steps] = asyncio.run(measure(args.n, args.c, steps, args.step_ms / 1000))
            after = cpu_now(server_pids)
            cpu[steps] = {name: after[name] - before[name] for name in before}
        after_run = until_idle(server_pids) if server_pids else None
        peaks = {name: peak_rss_mb(pid) or 0 for name, pid in server_pids.items()}
        peaks["this process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        if server is not None:
            server.stop()
    print_report(args, walls, cpu, after_run, peaks)


def cpu_now(server_pids: dict[str, int]) -> dict[str, float]:
    return {
        "this process": cpu_seconds(os.getpid(), False),
        **{name: cpu_seconds(pid) for name, pid in server_pids.items()},
    }


def print_report(
    args: argparse.Namespace,
    walls: dict[int, float],
    cpu: dict[int, dict[str, float]],
    after_run: tuple[float, dict[str, float]] | None,
    peaks: dict[str, float],
) -> None:
    empty, full = walls[0], walls[12]
    kind = "scaled server" if args.scaled_server else "server" if args.start_server else "API"
    print(
        f"Prefect alone, N={args.n} async subflows, c={args.c}, tasks in the step graph's "
        f"levels {graph_levels()}, {args.step_ms:.0f} ms each, Prefect {kind}"
    )
    if args.step_ms:
        limit = -(-args.n // args.c) * len(graph_levels()) * args.step_ms / 1000
        print(f"physical limit               {limit:7.1f} s   ratio {full / limit:.2f} x")
    print(
        f"subflows with no task        {empty:7.1f} s   {1000 * empty / args.n:6.0f} ms per subflow"
    )
    print(
        f"subflows with 12 tasks       {full:7.1f} s   {1000 * full / args.n:6.0f} ms per subflow, "
        f"{1000 * (full - empty) / (12 * args.n):5.1f} ms per task"
    )
    for steps, seconds in cpu.items():
        print(
            f"CPU per subflow with {steps:2d} tasks: "
            + ", ".join(f"{name} {1000 * s / args.n:5.0f} ms" for name, s in seconds.items())
            + " (includes the warm-up run)"
        )
    for steps, seconds in cpu.items():
        print(
            f"CPU in the run with {steps:2d} tasks: "
            + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
        )
    if after_run is not None:
        waited, idle_cpu = after_run
        print(
            f"after the runs: {waited:.1f} s until the server idled (at most 90); CPU meanwhile "
            + ", ".join(f"{name} {s:.1f} s" for name, s in idle_cpu.items())
        )
    print("peak RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in peaks.items()))


if __name__ == "__main__":
    main()
