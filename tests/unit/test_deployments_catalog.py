"""prefect.yaml is rendered from the deployment catalog and never drifts from it."""

from pathlib import Path

import yaml

from regbatch.deployments.catalog import CATALOG, prefect_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_equals_the_catalog() -> None:
    assert (ROOT / "prefect.yaml").read_text() == prefect_yaml(), (
        "prefect.yaml is stale: run `regbatch deployments yaml > prefect.yaml`"
    )


def test_every_entrypoint_is_a_flow_and_names_are_unique() -> None:
    from prefect import Flow
    from prefect.utilities.importtools import import_object

    assert len({s.name for s in CATALOG}) == len(CATALOG)
    for item in CATALOG:
        assert isinstance(import_object(item.flow), Flow), item.flow


def test_there_is_a_weekly_auckland_schedule() -> None:
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    schedules = [s for d in document["deployments"] for s in d["schedules"]]
    assert {"cron": "0 9 * * 1", "timezone": "Pacific/Auckland", "active": True} in schedules
