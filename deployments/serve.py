"""`regbatch serve`: serve every deployment from this process (Prefect's `serve`).

Runs started from the Prefect UI, the REST API or `regbatch batch start` then execute here, each
in its own subprocess. For many machines, use `prefect deploy --all` and process workers on the
`regbatch` work pool instead.
"""

from __future__ import annotations

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


def serve(limit: int | None = None, poll_seconds: int = 2) -> str:
    """Serve the deployments until SIGTERM or Ctrl+C; a started run begins within `poll_seconds`.

    Returns what happened to the deployments on the way out. Prefect's own pause on shutdown
    (`Runner.__aexit__`) retries each of its calls with backoff (PREFECT_CLIENT_MAX_RETRIES), so
    with the Prefect server gone SIGTERM and Ctrl+C left serve running for 40 s and more;
    it is off here and `pause_schedules` does the same once, briefly.
    """
    import logging

    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    for name in take_over_from_work_pool():
        logging.getLogger("regbatch.serve").warning(
            "serving %s here now; `prefect deploy --all` puts it back on the work pool", name
        )
    with temporary_settings({PREFECT_RUNNER_POLL_FREQUENCY: poll_seconds}):
        prefect_serve(*served_deployments(), limit=limit, pause_on_shutdown=False)
    return pause_schedules()


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
