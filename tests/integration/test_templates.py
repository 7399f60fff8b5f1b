"""Batch templates on PostgreSQL: validation, the restaurants they pick, batches made from them,
and the `regbatch template` commands."""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, update

from regbatch.db import templates
from regbatch.db.batches import batch_detail, create_batch
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, BatchTemplate
from regbatch.db.restaurants import import_restaurants
from regbatch.errors import InvalidInputError, NotFoundError
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus
from regbatch.services import templates as service
from regbatch.statuses import ExecutionMode
from tests.cli import cli, cli_json
from tests.factories import make_org, restaurant_row
from tests.integration.test_schema import _check_values


def add_restaurant(org_id: uuid.UUID, **changes: Any) -> uuid.UUID:
    """One restaurant in Auckland, hot, inbound, ICP 5, unregistered, unless `changes` say."""
    values = {
        "city": "Auckland",
        "lead_stage": "hot",
        "lead_type": "inbound",
        "icp_score": 5,
        "registration_status": "unregistered",
        **changes,
    }
    with session_scope() as session:
        return import_restaurants(session, org_id, [restaurant_row(0, **values)])[0].id


def put_in_batch(org_id: uuid.UUID, restaurant_id: uuid.UUID, status: str) -> uuid.UUID:
    with session_scope() as session:
        batch = create_batch(
            session, organisation_id=org_id, name="Earlier", restaurant_ids=[restaurant_id]
        )
        session.execute(update(Batch).where(Batch.id == batch.id).values(status=status))
        return batch.id


def template_count(org_id: uuid.UUID) -> int:
    with session_scope() as session:
        query = select(func.count()).where(BatchTemplate.organisation_id == org_id)
        return session.scalar(query) or 0


def test_bad_input_reports_every_problem_and_writes_nothing(org_id: uuid.UUID) -> None:
    with pytest.raises(InvalidInputError, match="template not created") as caught:
        service.create_template(
            org_id,
            name=" ",
            lead_stage="lukewarm",
            lead_type="walk-in",
            min_icp_score=11,
            registration_status="registered",
            limit=0,
            execution_mode="turbo",
            concurrency=0,
            settings={"payment": {"currency": "nzd"}, "colour": "red"},
            breaker_threshold=1.5,
            breaker_min_finished=0,
        )
    by_field = {p.field: p.message for p in caught.value.problems}
    assert set(by_field) >= {
        "name",
        "lead_stage",
        "lead_type",
        "min_icp_score",
        "registration_status",
        "limit",
        "execution_mode",
        "concurrency",
        "settings.payment.currency",
        "settings.colour",
        "breaker_threshold",
        "breaker_min_finished",
    }
    assert (
        by_field["lead_stage"]
        == "stage 'lukewarm' is not one of: cold, warm, hot; choose one of them"
    )
    assert by_field["registration_status"].startswith("'registered' never matches")
    assert by_field["limit"] == "0 is out of range; use 1 to 1000"
    assert template_count(org_id) == 0
    with pytest.raises(InvalidInputError) as caught:
        service.create_template(org_id, name="Sequential x4", concurrency=4)
    assert "sequential mode runs one restaurant at a time" in str(caught.value)


def test_names_are_unique_within_an_organisation(org_id: uuid.UUID) -> None:
    created = service.create_template(org_id, name="Auckland hot", city="Auckland")
    assert created.limit == 10 and created.concurrency == 1
    with pytest.raises(InvalidInputError) as caught:
        service.create_template(org_id, name="Auckland hot", lead_stage="hot")
    assert [str(p) for p in caught.value.problems] == [
        "name: 'Auckland hot' is taken in this organisation; choose another"
    ]
    with session_scope() as session:
        other_org = make_org(session)
    assert service.create_template(other_org, name="Auckland hot").name == "Auckland hot"
    assert template_count(org_id) == 1
    by_id = service.get_template(org_id, str(created.id))
    assert by_id == service.get_template(org_id, "Auckland hot")
    with pytest.raises(NotFoundError, match="template 'Nope' does not exist"):
        service.get_template(org_id, "Nope")


def test_matching_picks_unregistered_free_restaurants_by_filters_best_icp_first(
    org_id: uuid.UUID,
) -> None:
    best = add_restaurant(org_id, icp_score=10)
    second = add_restaurant(org_id, icp_score=9)
    after_finished_batch = add_restaurant(org_id, icp_score=8)
    put_in_batch(org_id, after_finished_batch, "completed")
    failed_before = add_restaurant(org_id, icp_score=6, registration_status="failed")
    # each of these is left out for one reason
    add_restaurant(org_id, icp_score=10, registration_status="registered")
    for status in ("draft", "in_progress", "paused"):
        put_in_batch(org_id, add_restaurant(org_id, icp_score=10), status)
    add_restaurant(org_id, icp_score=10, city="Wellington")
    add_restaurant(org_id, icp_score=10, lead_stage="warm")
    add_restaurant(org_id, icp_score=10, lead_type="outbound")
    add_restaurant(org_id, icp_score=4)
    with session_scope() as session:
        other_org = make_org(session)
    add_restaurant(other_org, icp_score=10)

    filters: dict[str, Any] = {
        "city": "auckland",
        "lead_stage": "hot",
        "lead_type": "inbound",
        "min_icp_score": 5,
    }
    with session_scope() as session:

        def picks(name: str, **options: Any) -> list[uuid.UUID]:
            template = templates.create_template(
                session, organisation_id=org_id, name=name, **filters, **options
            )
            return templates.matching_restaurants(session, template)

        picked = picks("Auckland hot", limit=10)
        assert picks("Top two", limit=2) == [best, second]
        assert picks("Failed before", registration_status="failed") == [failed_before]
    assert picked == [best, second, after_finished_batch, failed_before]
    preview = service.preview_template(org_id, "Auckland hot")
    assert [row["id"] for row in preview] == [str(i) for i in picked]
    assert preview[0]["icp_score"] == 10 and preview[0]["city"] == "Auckland"


def test_a_batch_from_a_template_takes_its_restaurants_and_options(org_id: uuid.UUID) -> None:
    ids = [add_restaurant(org_id, icp_score=score) for score in (7, 9, 8)]
    service.create_template(
        org_id,
        name="Hot leads",
        lead_stage="hot",
        limit=2,
        execution_mode="parallel",
        concurrency=3,
        settings={"payment": {"stripe_connect": False}},
        breaker_threshold=0.25,
        breaker_min_finished=2,
    )
    batch_id = service.create_batch_from_template(org_id, "Hot leads", created_by="schedule:monday")
    assert batch_id is not None
    with session_scope() as session:
        detail = batch_detail(session, batch_id, org_id)
    assert detail.name.startswith("Hot leads 20") and len(detail.name) == len("Hot leads") + 17
    assert detail.status == "draft" and detail.created_by == "schedule:monday"
    assert [job.restaurant_id for job in detail.jobs] == [ids[1], ids[2]]
    assert (detail.execution_mode, detail.concurrency) == ("parallel", 3)
    assert detail.settings == {"payment": {"stripe_connect": False}}
    assert (detail.breaker_threshold, detail.breaker_min_finished) == (0.25, 2)
    # the next run picks the one left; then nothing matches and no batch is made
    again = service.create_batch_from_template(org_id, "Hot leads", created_by=None)
    assert again is not None
    assert service.create_batch_from_template(org_id, "Hot leads", created_by=None) is None


def test_template_commands(org_id: uuid.UUID, tmp_path: Path) -> None:
    org_ref = str(org_id)
    top = add_restaurant(org_id, icp_score=9, city="Christchurch")
    add_restaurant(org_id, icp_score=3, city="Christchurch")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"onboarding": {"create_user": True}}))
    created = cli_json(
        "template", "create", "--org", org_ref, "--name", "Christchurch best",
        "--city", "Christchurch", "--stage", "hot", "--type", "inbound", "--min-icp", "5",
        "--limit", "5", "--mode", "parallel", "--concurrency", "2", "--settings", str(settings),
    )  # fmt: skip
    assert created["name"] == "Christchurch best" and created["limit"] == 5
    assert created["settings"] == {"onboarding": {"create_user": True}}
    listed = cli_json("template", "list", "--org", org_ref)
    assert [t["id"] for t in listed] == [created["id"]]
    shown = cli_json("template", "show", "Christchurch best", "--org", org_ref)
    assert shown == created
    assert "at most 5" in cli("template", "show", created["id"], "--org", org_ref).stdout
    preview = cli_json("template", "preview", "Christchurch best", "--org", org_ref)
    assert [row["id"] for row in preview] == [str(top)]
    deleted = cli_json("template", "delete", "Christchurch best", "--org", org_ref)
    assert deleted == {"id": created["id"], "name": "Christchurch best", "deleted": True}
    assert cli_json("template", "list", "--org", org_ref) == []

    bad = cli(
        "template", "create", "--org", org_ref, "--name", "Bad", "--stage", "tepid",
        "--min-icp", "12", check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "error: template not created: invalid template",
        "  - lead_stage: stage 'tepid' is not one of: cold, warm, hot; choose one of them",
        "  - min_icp_score: 12 is out of range; use 0 to 10",
    ]
    missing = cli("template", "preview", "Gone", "--org", org_ref, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: template 'Gone' does not")


@pytest.mark.parametrize(
    ("column", "enum"),
    [
        ("lead_stage", LeadStage),
        ("lead_type", LeadType),
        ("registration_status", RegistrationStatus),
        ("execution_mode", ExecutionMode),
    ],
)
def test_template_check_lists_equal_the_enums(
    pg_url: str, column: str, enum: type[StrEnum]
) -> None:
    engine = create_engine(pg_url)
    try:
        assert _check_values(engine, "batch_templates", column) == {m.value for m in enum}
    finally:
        engine.dispose()


def test_a_name_taken_between_check_and_insert_is_reported_cleanly(
    org_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.create_template(org_id, name="Race")
    # as if a concurrent create inserted the name after this one checked it
    monkeypatch.setattr(templates, "_find", lambda *args: None)
    with pytest.raises(InvalidInputError, match="'Race' is taken in this organisation"):
        service.create_template(org_id, name="Race")
    assert template_count(org_id) == 1
