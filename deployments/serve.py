"""`regbatch serve`: serve every deployment from this process (Prefect's `serve`).

Runs started from the Prefect UI, the REST API or `regbatch batch start` then execute here, each
in its own subprocess. For many machines, use `prefect deploy --all` and process workers on the
`regbatch` work pool instead.
"""

from __future__ import annotations

from typing import Any

from deployments.catalog import CATALOG, TAGS


def served_deployments() -> list[Any]:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
    from prefect.utilities.importtools import import_object

    deployments = []
    for item in CATALOG:
        flow = import_object(item.flow)
        schedules: list[CronSchedule | IntervalSchedule] = []
        for schedule in item.schedules:
            if "cron" in schedule:
                schedules.append(
                    CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
                )
            else:
                schedules.append(IntervalSchedule(interval=schedule["interval"]))
        deployments.append(
            flow.to_deployment(
                name=item.name,
                description=item.description,
                parameters=item.parameters,
                schedules=schedules or None,
                tags=list(TAGS),
                concurrency_limit=item.concurrency_limit,
            )
        )
    return deployments


def serve(limit: int | None = None, poll_seconds: int = 2) -> None:
    """Serve the deployments until interrupted; a started run begins within `poll_seconds`."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_RUNNER_POLL_FREQUENCY: poll_seconds}):
        prefect_serve(*served_deployments(), limit=limit)
