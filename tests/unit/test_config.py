"""The registration configuration: defaults from the restaurant, batch settings merged over them."""

import pytest

from regbatch.config import build_config, deep_merge, settings_problems
from tests.factories import sample_rows


def record(index: int = 0, **changes: object) -> dict:
    row = {**sample_rows()[index], "id": "r-1", **changes}
    return {k: v for k, v in row.items() if v is not None}


def test_defaults_come_from_the_restaurant() -> None:
    row = record(0)
    config = build_config(row)
    assert config.account.email == row["email"]
    assert config.account.name == row["contact_name"]
    assert config.restaurant.address == row["address"]
    assert config.website.primary_color == row["primary_color"]
    assert config.menu.import_menu is True
    assert config.menu.data is not None
    assert config.menu.upload_images == any(
        i.get("image_url") for c in row["menu"]["categories"] for i in c["items"]
    )


def test_subdomain_is_derived_from_name_and_city_when_missing() -> None:
    config = build_config(record(0, subdomain=None, name="Pizza Palace", city="Auckland"))
    assert config.restaurant.subdomain == "pizza-palace-auckland"


def test_no_menu_means_no_menu_steps() -> None:
    config = build_config(record(0, menu=None))
    assert not (
        config.menu.import_menu
        or config.menu.upload_images
        or config.menu.create_option_sets
        or config.menu.create_item_tags
    )


def test_batch_settings_override_defaults_key_by_key() -> None:
    common = {"payment": {"stripe_connect": False}, "onboarding": {"create_user": True}}
    config = build_config(record(0), common)
    assert config.payment.stripe_connect is False
    assert config.payment.provider == "stripe"  # untouched sibling keeps its default
    assert config.onboarding.create_user is True


def test_per_restaurant_override_wins_over_batch_settings() -> None:
    config = build_config(
        record(0), {"services": {"delivery": True}}, {"services": {"delivery": False}}
    )
    assert config.services.delivery is False


def test_deep_merge_does_not_mutate_its_inputs() -> None:
    base = {"a": {"b": 1}}
    deep_merge(base, {"a": {"c": 2}})
    assert base == {"a": {"b": 1}}


def test_deep_merge_shares_no_list_or_object_with_its_inputs() -> None:
    base = {"a": {"tags": ["x"]}, "rows": [{"n": 1}]}
    overlay = {"b": [[1, 2], {"c": [3]}], "d": (4, [5])}
    merged = deep_merge(base, overlay)
    assert merged == {**base, **overlay}
    merged["a"]["tags"].append("y")
    merged["rows"][0]["n"] = 2
    merged["b"][0].append(9)
    merged["b"][1]["c"].append(9)
    merged["d"][1].append(9)
    assert base == {"a": {"tags": ["x"]}, "rows": [{"n": 1}]}
    assert overlay == {"b": [[1, 2], {"c": [3]}], "d": (4, [5])}


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"paymnt": {}}, "settings.paymnt", "is not a known setting"),
        (
            {"payment": {"provider": "paypal"}},
            "settings.payment.provider",
            "'paypal' is not one of: stripe, cash; choose one of them",
        ),
        (
            {"services": {"prep_time_minutes": -5}},
            "settings.services.prep_time_minutes",
            "greater than or equal to 0",
        ),
        (
            {"steps": {"menu": False}},
            "settings.steps.menu",
            "'menu' is not one of: account_registration, code_generation",
        ),
    ],
)
def test_invalid_settings_name_the_field(settings: dict, field: str, message: str) -> None:
    problems = settings_problems(settings)
    assert any(p.field == field and message in p.message for p in problems), problems
