"""Prefect's own floor on this machine: N async subflows of 0 or 12 no-op async tasks, c at once.

No database, no HTTP, no regbatch code: what a flow run per restaurant and a task run per step
cost by themselves, on the same kind of Prefect server the batch benchmark uses. It gives the
batch benchmark's orchestration figures their context.

    .venv/bin/python bench/prefect_floor.py --n 100 --c 25 --start-server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_bench import start_prefect_server


async def measure(n: int, c: int, steps: int) -> float:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(cache_policy=NO_CACHE, persist_result=False)
    async def step(number: int) -> int:
        return number

    @flow(persist_result=False)
    async def restaurant(number: int, steps: int) -> int:
        for i in range(steps):
            await step(i)
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
    parser.add_argument("--start-server", action="store_true")
    args = parser.parse_args()
    os.environ.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
        }
    )
    server = None
    if args.start_server:
        server, url = start_prefect_server(Path(tempfile.mkdtemp(prefix="regbatch-floor-")))
        os.environ["PREFECT_API_URL"] = url
    try:
        empty = asyncio.run(measure(args.n, args.c, 0))
        full = asyncio.run(measure(args.n, args.c, 12))
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
    print(f"Prefect alone, N={args.n} async subflows, c={args.c}")
    print(
        f"subflows with no task        {empty:7.1f} s   {1000 * empty / args.n:6.0f} ms per subflow"
    )
    print(
        f"subflows with 12 no-op tasks {full:7.1f} s   {1000 * full / args.n:6.0f} ms per subflow, "
        f"{1000 * (full - empty) / (12 * args.n):5.1f} ms per task"
    )


if __name__ == "__main__":
    main()
