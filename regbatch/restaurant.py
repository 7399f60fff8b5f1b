"""The restaurant record: its vocabularies, its menu, and its fields, declared once.

`RestaurantRecord` is the one declaration of a restaurant's fields (the `restaurants` columns):
name, type, size, default and format. The import row (`RestaurantIn`: the record plus
`account_password`, which is encrypted before it is stored) inherits them, the SQLAlchemy model
derives its columns from them (db/models.py), and the registration configuration is seeded from
the record fields its sections share by name (regbatch/config.py).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from regbatch import formats


class LeadType(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class LeadStage(StrEnum):
    COLD = "cold"
    WARM = "warm"
    HOT = "hot"


class RegistrationStatus(StrEnum):
    UNREGISTERED = "unregistered"
    IN_PROGRESS = "in_progress"
    REGISTERED = "registered"
    FAILED = "failed"


class ImportAction(StrEnum):
    """What importing a row did to the organisation's restaurants."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class RestaurantType(StrEnum):
    RESTAURANT = "restaurant"
    CAFE = "cafe"
    TAKEAWAY = "takeaway"
    BAR = "bar"
    BAKERY = "bakery"
    FOOD_TRUCK = "food_truck"


class Theme(StrEnum):
    LIGHT = "light"
    DARK = "dark"


def _checked(check: Any, value: Any) -> Any:
    """`value` unchanged when `check` finds no problem, else ValueError with the problem."""
    if value is None:
        return None
    problem = check(value)
    if problem:
        raise ValueError(problem)
    return value


class OptionChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    price: Decimal = Field(default=Decimal("0"), ge=0, le=10000)


class OptionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    required: bool = False
    min_choices: int = Field(default=0, ge=0)
    max_choices: int = Field(default=1, ge=1)
    options: list[OptionChoice] = Field(min_length=1)

    @model_validator(mode="after")
    def _choices_fit(self) -> OptionSet:
        if self.min_choices > self.max_choices:
            raise ValueError(
                f"option set {self.name!r}: min_choices {self.min_choices} is above "
                f"max_choices {self.max_choices}; lower min_choices"
            )
        if self.max_choices > len(self.options):
            raise ValueError(
                f"option set {self.name!r}: max_choices {self.max_choices} is above its "
                f"{len(self.options)} options; lower max_choices or add options"
            )
        return self


class MenuItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(ge=0, le=10000)
    description: str = Field(default="", max_length=2000)
    tags: list[str] = Field(default_factory=list)
    image_url: str | None = None
    option_sets: list[str] = Field(default_factory=list)

    @field_validator("image_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _checked(formats.check_url, value)


class MenuCategory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    items: list[MenuItem] = Field(min_length=1)


class Menu(BaseModel):
    """A restaurant's menu: categories of items, and the option sets items refer to by name."""

    model_config = ConfigDict(extra="forbid")
    categories: list[MenuCategory] = Field(min_length=1)
    option_sets: list[OptionSet] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> Menu:
        names = [s.name for s in self.option_sets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"option set names must be unique; repeated: {duplicates}")
        unknown = sorted(
            {ref for item in self.items() for ref in item.option_sets if ref not in names}
        )
        if unknown:
            raise ValueError(
                f"items refer to option sets {unknown} that the menu does not define; "
                "add them to menu.option_sets or remove the references"
            )
        return self

    def items(self) -> list[MenuItem]:
        return [item for category in self.categories for item in category.items]

    @property
    def has_images(self) -> bool:
        return any(item.image_url for item in self.items())

    @property
    def has_tags(self) -> bool:
        return any(item.tags for item in self.items())


class RestaurantRecord(BaseModel):
    """A restaurant's fields, one per `restaurants` column: type, size (max_length), default."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=120)
    """The restaurant's id in the organisation's own system: a re-import matches on it."""
    contact_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = None
    city: str | None = Field(default=None, max_length=120)
    country: str = Field(default="NZ", max_length=2)
    opening_hours: dict[str, Any] | None = None
    cuisine: str | None = Field(default=None, max_length=120)
    restaurant_type: RestaurantType = RestaurantType.RESTAURANT
    theme: Theme = Theme.LIGHT
    primary_color: str | None = Field(default=None, max_length=7)
    secondary_color: str | None = Field(default=None, max_length=7)
    logo_url: str | None = None
    subdomain: str | None = Field(default=None, max_length=63)
    lead_type: LeadType = LeadType.OUTBOUND
    lead_stage: LeadStage = LeadStage.COLD
    icp_score: int = Field(default=0, ge=0, le=10)
    registration_status: RegistrationStatus = RegistrationStatus.UNREGISTERED
    menu: Menu | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return _checked(formats.check_email, value or None)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return _checked(formats.check_phone, value or None)

    @field_validator("primary_color", "secondary_color")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return _checked(formats.check_colour, value or None)

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        return _checked(formats.check_url, value or None)

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        return _checked(formats.check_subdomain, value or None)

    @field_validator("opening_hours")
    @classmethod
    def _hours(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _checked(formats.check_opening_hours, value) if value is not None else None


RECORD_FIELDS: tuple[str, ...] = tuple(RestaurantRecord.model_fields)


def record_default(name: str) -> Any:
    """The default of record field `name`; None when it has none (it is required)."""
    field = RestaurantRecord.model_fields[name]
    return None if field.is_required() else field.default


class RestaurantIn(RestaurantRecord):
    """One restaurant to import: keys are `restaurants` column names (+ `account_password`)."""

    account_password: SecretStr | None = None

    @field_validator("account_password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 12:
            raise ValueError(
                "account_password must have at least 12 characters; leave it out to "
                "have a strong one generated"
            )
        return value
