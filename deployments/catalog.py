"""Every deployment of regbatch, declared once.

`prefect.yaml` (for `prefect deploy --all` and workers on a work pool) is rendered from this list
(`regbatch deployments yaml`; a test keeps the two equal), and `regbatch serve` serves the same
deployments from this process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regbatch.run_tags import BATCH_TAG, PRODUCT_TAG, RESTAURANT_TAG

WORK_POOL = "regbatch"
TAGS = (PRODUCT_TAG,)


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    flow: str  # "module:function" of the installed package
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = ()
    """Each names its timezone (the UI shows the schedule in it) and has a readable slug."""
    concurrency_limit: int | None = None
    tags: tuple[str, ...] = TAGS

    @property
    def flow_name(self) -> str:
        from prefect.utilities.importtools import import_object

        return str(import_object(self.flow).name)

    @property
    def full_name(self) -> str:
        """'flow-name/deployment-name', what `run_deployment` takes."""
        return f"{self.flow_name}/{self.name}"


CATALOG: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name="registration-batch",
        flow="regbatch.flows.batch:registration_batch",
        description="Run a registration batch (an existing one by id, or a new one from "
        "restaurant ids). Use Custom run: Quick run has no batch to run.",
        tags=(*TAGS, BATCH_TAG),
    ),
    DeploymentSpec(
        name="register-restaurant",
        flow="regbatch.flows.restaurant:register_restaurant",
        description="Register one restaurant of a batch (distributed mode submits each "
        "restaurant here).",
        tags=(*TAGS, RESTAURANT_TAG),
    ),
    DeploymentSpec(
        name="retry-failed",
        flow="regbatch.flows.retry:retry_failed_batch",
        description="Retry a batch's failed restaurants in a new linked batch.",
    ),
    DeploymentSpec(
        name="template-batch",
        flow="regbatch.flows.template:template_batch",
        description="Register the restaurants a saved template selects now.",
    ),
    DeploymentSpec(
        name="auckland-hot-leads-weekly",
        flow="regbatch.flows.template:template_batch",
        description="Every Monday 09:00 Auckland time: register the next 5 hot leads in "
        "Auckland (template 'Auckland hot leads' of organisation 'Acme Foods').",
        parameters={
            "run": {
                "organisation": "Acme Foods",
                "template": "Auckland hot leads",
                "started_by": "schedule",
            }
        },
        schedules=(
            {
                "cron": "0 9 * * 1",
                "timezone": "Pacific/Auckland",
                "slug": "Mondays 09:00 (Pacific/Auckland)",
                "active": True,
            },
        ),
        concurrency_limit=1,
    ),
    DeploymentSpec(
        name="recover-stalled-batches",
        flow="regbatch.flows.recovery:recover_stalled_batches",
        description=(
            "Every 5 minutes: take over batches whose runner died (lease expired); "
            "`organisation` limits a run to one organisation's."
        ),
        schedules=(
            {"interval": 300, "timezone": "UTC", "slug": "Every 5 minutes (UTC)", "active": True},
        ),
        concurrency_limit=1,
    ),
)


def spec(name: str) -> DeploymentSpec:
    for candidate in CATALOG:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no deployment {name!r}; known: {', '.join(s.name for s in CATALOG)}")


def prefect_yaml() -> str:
    """The prefect.yaml these deployments make (module entrypoints: no pull step needed)."""
    import yaml
    from prefect import __version__

    deployments = []
    for item in CATALOG:
        entry: dict[str, Any] = {
            "name": item.name,
            "entrypoint": item.flow,
            "description": item.description,
            "tags": list(item.tags),
            "parameters": item.parameters,
            "schedules": list(item.schedules),
            "work_pool": {"name": WORK_POOL, "work_queue_name": "default"},
        }
        if item.concurrency_limit is not None:
            entry["concurrency_limit"] = item.concurrency_limit
        deployments.append(entry)
    document = {
        "name": "regbatch",
        "prefect-version": __version__,
        "build": None,
        "push": None,
        "pull": None,
        "deployments": deployments,
    }
    header = (
        "# Rendered from deployments/catalog.py by `regbatch deployments yaml`; "
        "tests/integration/test_deployments.py keeps them equal.\n"
        "# Entrypoints are modules of the installed regbatch package, so no pull step "
        "is needed.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
