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
    weekly = [s for s in schedules if s.get("cron") == "0 9 * * 1"]
    assert len(weekly) == 1 and weekly[0]["timezone"] == "Pacific/Auckland"


def test_every_schedule_names_its_timezone_where_the_ui_shows_it() -> None:
    """The UI's schedule card shows a schedule's slug when it has one, and its timezone only in
    a tooltip otherwise: each schedule names its timezone and its slug says it."""
    from zoneinfo import ZoneInfo

    schedules = [s for item in CATALOG for s in item.schedules]
    assert schedules
    for schedule in schedules:
        ZoneInfo(schedule["timezone"])  # a real IANA name
        assert f"({schedule['timezone']})" in schedule["slug"], schedule


def test_batch_and_restaurant_runs_carry_their_own_tag() -> None:
    tags = {item.name: set(item.tags) for item in CATALOG}
    assert tags["registration-batch"] == {"regbatch", "regbatch-batch"}
    assert tags["register-restaurant"] == {"regbatch", "regbatch-restaurant"}
    assert all("regbatch" in t for t in tags.values())
