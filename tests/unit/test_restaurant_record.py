"""The restaurant's fields are declared once (RestaurantRecord); the import row, the table and
the configuration's defaults follow them."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import ValidationError
from sqlalchemy import Integer, String, Text

from regbatch.config import RestaurantConfig, WebsiteConfig, defaults_from_restaurant
from regbatch.db.models import Restaurant
from regbatch.restaurant import RECORD_FIELDS, RestaurantIn, RestaurantRecord, record_default

TABLE_ONLY = {"id", "organisation_id", "account_password_encrypted", "created_at", "updated_at"}


def _bare(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 and type(None) in get_args(annotation) else annotation


def _optional(annotation: Any) -> bool:
    return type(None) in get_args(annotation)


def test_the_table_has_a_column_for_every_record_field_and_nothing_else_of_the_record() -> None:
    assert set(Restaurant.__table__.c.keys()) == set(RECORD_FIELDS) | TABLE_ONLY


@pytest.mark.parametrize("name", RECORD_FIELDS)
def test_each_column_is_derived_from_its_record_field(name: str) -> None:
    field = RestaurantRecord.model_fields[name]
    column = Restaurant.__table__.c[name]
    assert column.nullable is _optional(field.annotation)
    default = record_default(name)
    assert (column.default.arg if column.default is not None else None) == default
    # the model's Mapped[...] annotation (written for the type checker) says the same
    assert ("None" in Restaurant.__annotations__[name]) is column.nullable
    size = next((m.max_length for m in field.metadata if hasattr(m, "max_length")), None)
    if _bare(field.annotation) is str:
        assert isinstance(column.type, String if size else Text)
        assert getattr(column.type, "length", None) == size
    if _bare(field.annotation) is int:
        assert isinstance(column.type, Integer)


def test_the_import_row_is_the_record_plus_the_password() -> None:
    assert tuple(RestaurantIn.model_fields) == (*RECORD_FIELDS, "account_password")


def test_the_import_refuses_a_value_its_column_cannot_hold() -> None:
    with pytest.raises(ValidationError, match="city\n  String should have at most 120 characters"):
        RestaurantIn.model_validate({"name": "Cafe", "city": "x" * 121})


@pytest.mark.parametrize("section", [RestaurantConfig, WebsiteConfig])
def test_configuration_fields_named_after_record_fields_have_their_type_and_default(
    section: type[Any],
) -> None:
    shared = [name for name in section.model_fields if name in RECORD_FIELDS]
    assert shared, section
    for name in shared:
        ours, record = section.model_fields[name], RestaurantRecord.model_fields[name]
        assert _bare(ours.annotation) == _bare(record.annotation), name
        if record_default(name) is not None:
            assert ours.default == record_default(name), name


def test_the_configuration_is_seeded_from_every_shared_record_field() -> None:
    record = {
        "name": "Cafe Uno",
        "city": "Auckland",
        "country": "AU",
        "email": "a@example.com",
        "theme": "dark",
        "primary_color": "#112233",
    }
    defaults = defaults_from_restaurant(record)
    for section, model in (("restaurant", RestaurantConfig), ("website", WebsiteConfig)):
        for name in model.model_fields:
            if name in RECORD_FIELDS:
                expected = record.get(name) or record_default(name)
                if name == "subdomain":
                    expected = "cafe-uno-auckland"
                assert defaults[section][name] == expected, (section, name)
    assert defaults["website"]["header_text"] == "Cafe Uno"


def test_an_empty_country_type_or_theme_takes_the_records_default() -> None:
    defaults = defaults_from_restaurant(
        {"name": "Cafe", "country": "", "restaurant_type": None, "theme": ""}
    )
    assert defaults["restaurant"]["country"] == record_default("country") == "NZ"
    assert defaults["restaurant"]["restaurant_type"] == record_default("restaurant_type")
    assert defaults["website"]["theme"] == record_default("theme")
