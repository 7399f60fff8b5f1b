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


def serve(limit: int | None = None, poll_seconds: int = 2) -> None:
    """Serve the deployments until interrupted; a started run begins within `poll_seconds`."""
    import logging

    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    for name in take_over_from_work_pool():
        logging.getLogger("regbatch.serve").warning(
            "serving %s here now; `prefect deploy --all` puts it back on the work pool", name
        )
    with temporary_settings({PREFECT_RUNNER_POLL_FREQUENCY: poll_seconds}):
        prefect_serve(*served_deployments(), limit=limit)
