"""`regbatch serve`: serve every deployment from this process (Prefect's `serve`).

Runs started from the Prefect UI, the REST API or `regbatch batch start` then execute here, each
in its own subprocess. For many machines, use `prefect deploy --all` and process workers on the
`regbatch` work pool instead.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from regbatch.deployments.catalog import CATALOG


def served_deployments() -> list[Any]:
    from prefect.schedules import Cron, Interval, Schedule
    from prefect.utilities.importtools import import_object

    deployments = []
    for item in CATALOG:
        flow = import_object(item.flow)
        schedules: list[Schedule] = []
        for schedule in item.schedules:
            common = {"timezone": schedule["timezone"], "slug": schedule["slug"]}
            if "cron" in schedule:
                schedules.append(Cron(schedule["cron"], **common))
            else:
                schedules.append(Interval(schedule["interval"], **common))
        deployments.append(
            flow.to_deployment(
                name=item.name,
                description=item.description,
                parameters=item.parameters,
                schedules=schedules or None,
                tags=list(item.tags),
                concurrency_limit=item.concurrency_limit,
            )
        )
    return deployments


def take_over_from_work_pool() -> list[str]:
    """Remove same-named deployments that `prefect deploy` put on a work pool.

    A served deployment keeps a work pool it had, and its runs would then wait for a worker
    instead of running here. Returns the names taken over (`prefect deploy --all` gives them
    back to the pool).
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from regbatch.deployments.catalog import CATALOG

    taken = []
    with get_client(sync_client=True) as client:
        for item in CATALOG:
            try:
                deployment = client.read_deployment_by_name(item.full_name)
            except ObjectNotFound:
                continue
            if deployment.work_pool_name:
                client.delete_deployment(deployment.id)
                taken.append(f"{item.full_name} (was on work pool {deployment.work_pool_name})")
    return taken


def serve(limit: int | None = None, poll_seconds: int = 2, grace_s: float = 8.0) -> str:
    """Serve the deployments until SIGTERM or Ctrl+C; a started run begins within `poll_seconds`.

    Returns what happened to the deployments on the way out. Prefect's `serve`, with the Prefect
    server gone, kept running long after the signal: its pause on shutdown (`Runner.__aexit__`)
    and its cancelling of runs in flight retry each call with backoff (PREFECT_CLIENT_MAX_RETRIES),
    and a run's process delivers its queued events before it exits. So the pause is off here
    (`pause_schedules` does it once, briefly), and runs still there `grace_s` after the signal
    are killed (`regbatch recover` takes their batches over).
    """
    import asyncio
    import logging

    from prefect.flows import _display_serve_start_message
    from prefect.runner import Runner
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    for name in take_over_from_work_pool():
        logging.getLogger("regbatch.serve").warning(
            "serving %s here now; `prefect deploy --all` puts it back on the work pool", name
        )
    with temporary_settings({PREFECT_RUNNER_POLL_FREQUENCY: poll_seconds}):
        runner = Runner(pause_on_shutdown=False, limit=limit)
        deployments = served_deployments()
        for deployment in deployments:
            runner.add_deployment(deployment)
        _display_serve_start_message(*deployments)
        asyncio.run(_run_until_signalled(runner, grace_s))
    return pause_schedules()


async def _run_until_signalled(runner: Any, grace_s: float) -> None:
    """Run `runner` until SIGTERM or SIGINT, then stop it (forcibly after `grace_s`)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(runner.start())
    await asyncio.sleep(0)  # start() has set Prefect's SIGTERM handler; these replace it
    stopping: list[asyncio.Future[Any]] = []
    stopped = threading.Event()

    def stop() -> None:
        if stopping:
            return
        watchdog = threading.Thread(target=_force_stop_after, args=(grace_s, stopped), daemon=True)
        watchdog.start()
        if runner.started:
            stopping.append(loop.create_task(runner.astop()))
        else:
            running.cancel()
            stopping.append(running)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        stopped.set()


def _force_stop_after(grace_s: float, stopped: threading.Event) -> None:
    """Kill this process's runs and exit, unless the runner `stopped` within `grace_s`."""
    import os
    import signal
    import sys

    if stopped.wait(grace_s):
        return
    children = _child_pids()
    print(
        f"regbatch serve stopped: still shutting down {grace_s:g} s after the signal (is the "
        f"Prefect server gone?); killed its {len(children)} run(s); `regbatch recover` takes "
        "their batches over",
        file=sys.stderr,
        flush=True,
    )
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os._exit(1)


def _child_pids() -> list[int]:
    """The pids of this process's children (Linux's /proc; none found elsewhere)."""
    import os
    from pathlib import Path

    me, children = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")"
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                children.append(int(stat.parent.name))
    return children


def pause_schedules(timeout_s: float = 5.0) -> str:
    """Pause the served deployments (as Prefect does on shutdown): one try each, `timeout_s` in all.

    While nothing serves them their scheduled runs would only pile up as Late; the next
    `regbatch serve` resumes them. Returns a line saying what it did.
    """
    import anyio

    try:
        anyio.run(_pause, [item.full_name for item in CATALOG], timeout_s)
    except TimeoutError:
        return f"deployments left as they were: the Prefect server took over {timeout_s:g} s"
    except Exception as error:  # server gone, refused, ...: nothing more to do on the way out
        return f"deployments left as they were: the Prefect server is unreachable ({error})"
    return "deployments paused until the next `regbatch serve`"


async def _pause(names: list[str], timeout_s: float) -> None:
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}), anyio.fail_after(timeout_s):
        async with get_client() as client:
            for name in names:
                try:
                    deployment = await client.read_deployment_by_name(name)
                except ObjectNotFound:
                    continue
                await client.pause_deployment(deployment.id)
