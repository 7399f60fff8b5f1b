"""Pre-flight validation reports every missing or malformed input at once, naming field and fix."""

import pytest

from regbatch.config import build_config
from regbatch.preflight import preflight
from tests.factories import sample_rows


def record(**changes: object) -> dict:
    row = {**sample_rows()[0], "id": "r-1", **changes}
    return {k: v for k, v in row.items() if v is not None}


def fields(problems: list) -> set[str]:
    return {p.field for p in problems}


def test_every_sample_restaurant_passes() -> None:
    for index, row in enumerate(sample_rows()):
        config = build_config(
            {**row, "id": f"r{index}"}, {"onboarding": {"create_user": True, "sync": True}}
        )
        assert preflight(config) == [], row["name"]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"email": None},
            "restaurants.email",
            "is missing; set restaurants.email or config.restaurant.email",
        ),
        ({"email": "not-an-email"}, "restaurants.email", "'not-an-email' is not an email address"),
        ({"phone": None}, "restaurants.phone", "is missing"),
        ({"phone": "12"}, "restaurants.phone", "is not a phone number; use 7-15 digits"),
        ({"address": None}, "restaurants.address", "is missing"),
        ({"opening_hours": None}, "restaurants.opening_hours", "is missing"),
        ({"opening_hours": {"monday": []}}, "restaurants.opening_hours", "unknown day 'monday'"),
        (
            {"opening_hours": {"mon": [{"open": "9am", "close": "17:00"}]}},
            "restaurants.opening_hours",
            "is not HH:MM",
        ),
        (
            {"primary_color": None},
            "restaurants.primary_color",
            "code generation needs the theme colours",
        ),
        ({"secondary_color": "red"}, "restaurants.secondary_color", "'red' is not a colour"),
    ],
)
def test_problem_names_field_and_fix(changes: dict, field: str, message: str) -> None:
    problems = preflight(build_config(record(**changes)))
    matching = [p for p in problems if p.field == field]
    assert matching, problems
    assert message in matching[0].message


def test_all_problems_are_reported_at_once() -> None:
    problems = preflight(
        build_config(record(email=None, phone=None, address=None, primary_color=None))
    )
    assert {
        "restaurants.email",
        "restaurants.phone",
        "restaurants.address",
        "restaurants.primary_color",
    } <= fields(problems)


def test_colours_are_not_needed_when_code_generation_is_off() -> None:
    config = build_config(
        record(primary_color=None, secondary_color=None), {"steps": {"code_generation": False}}
    )
    assert preflight(config) == []


def test_menu_import_on_without_menu_is_a_problem() -> None:
    config = build_config(record(menu=None), {"menu": {"import_menu": True}})
    assert "restaurants.menu" in fields(preflight(config))


def test_existing_account_needs_its_id() -> None:
    config = build_config(record(), {"account": {"create_account": False}})
    problems = preflight(config)
    assert "config.account.existing_account_id" in fields(problems)
    ok = build_config(
        record(), {"account": {"create_account": False, "existing_account_id": "acc_1"}}
    )
    assert preflight(ok) == []


def test_sync_without_onboarding_user_is_a_problem() -> None:
    config = build_config(record(), {"onboarding": {"sync": True}})
    assert "config.onboarding.sync" in fields(preflight(config))
