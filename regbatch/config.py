"""The per-restaurant registration configuration, its defaults, and the merge of batch settings.

`build_config(restaurant, common, override)` derives every default from the restaurant record
(the `restaurant` and `website` sections take the record's fields of the same names),
lays the batch's common settings over it, then the restaurant's own override, and validates the
result. The result is what a job stores as `execution_config` and what every step reads. The
owner's password is never part of it: the account step decrypts it from the restaurant row.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regbatch.errors import Problem
from regbatch.formats import slugify
from regbatch.restaurant import RECORD_FIELDS, Menu, RestaurantType, Theme, record_default
from regbatch.step_spec import StepKey


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountConfig(_Section):
    create_account: bool = True
    email: str | None = None
    name: str | None = None
    phone: str | None = None
    existing_account_id: str | None = None


class RestaurantConfig(_Section):
    """The restaurant as the platform registers it: record fields, every one overridable."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    city: str | None = None
    country: str = record_default("country")
    opening_hours: dict[str, Any] | None = None
    cuisine: str | None = None
    restaurant_type: RestaurantType = record_default("restaurant_type")
    subdomain: str | None = None


class WebsiteConfig(_Section):
    theme: Theme = record_default("theme")
    primary_color: str | None = None
    secondary_color: str | None = None
    logo_url: str | None = None
    header_text: str | None = None


class ServicesConfig(_Section):
    pickup: bool = True
    delivery: bool = False
    delivery_radius_km: float = Field(default=5.0, ge=0, le=100)
    minimum_order: Decimal = Field(default=Decimal("0"), ge=0)
    prep_time_minutes: int = Field(default=20, ge=0, le=240)


class PaymentConfig(_Section):
    provider: Literal["stripe", "cash"] = "stripe"
    stripe_connect: bool = True
    currency: str = Field(default="NZD", pattern=r"^[A-Z]{3}$")


class MenuConfig(_Section):
    import_menu: bool = False
    upload_images: bool = False
    create_option_sets: bool = False
    create_item_tags: bool = False
    menu_ref: str | None = None
    data: Menu | None = None


class OnboardingConfig(_Section):
    create_user: bool = False
    sync: bool = False


class StepPolicy(_Section):
    """Per-step overrides of the graph's retry policy and timeout."""

    retries: int | None = Field(default=None, ge=0, le=10)
    retry_delays_s: list[float] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=6 * 3600)


class RegistrationConfig(_Section):
    """Everything the twelve steps of one restaurant need, except the owner's password."""

    account: AccountConfig = Field(default_factory=AccountConfig)
    restaurant: RestaurantConfig = Field(default_factory=RestaurantConfig)
    website: WebsiteConfig = Field(default_factory=WebsiteConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    payment: PaymentConfig = Field(default_factory=PaymentConfig)
    menu: MenuConfig = Field(default_factory=MenuConfig)
    onboarding: OnboardingConfig = Field(default_factory=OnboardingConfig)
    steps: dict[StepKey, bool] = Field(default_factory=dict)
    """Per-step enable flags; a step set to false is skipped with that reason."""
    policies: dict[StepKey, StepPolicy] = Field(default_factory=dict)

    def step_enabled(self, key: StepKey) -> bool:
        return self.steps.get(key, True)


def defaults_from_restaurant(restaurant: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration a restaurant record implies, before any batch setting is applied."""
    menu = restaurant.get("menu")
    parsed = Menu.model_validate(menu) if menu else None
    seeded = {
        section: _from_record(model, restaurant)
        for section, model in (("restaurant", RestaurantConfig), ("website", WebsiteConfig))
    }
    seeded["restaurant"]["subdomain"] = seeded["restaurant"]["subdomain"] or slugify(
        restaurant.get("name") or "", restaurant.get("city") or ""
    )
    seeded["website"]["header_text"] = restaurant.get("name")
    return {
        "account": {
            "email": restaurant.get("email"),
            "name": restaurant.get("contact_name") or restaurant.get("name"),
            "phone": restaurant.get("phone"),
        },
        **seeded,
        "menu": {
            "import_menu": parsed is not None,
            "upload_images": bool(parsed and parsed.has_images),
            "create_option_sets": bool(parsed and parsed.option_sets),
            "create_item_tags": bool(parsed and parsed.has_tags),
            "menu_ref": str(restaurant.get("id")) if parsed else None,
            "data": parsed.model_dump(mode="json") if parsed else None,
        },
    }


def _from_record(section: type[_Section], restaurant: Mapping[str, Any]) -> dict[str, Any]:
    """The section's fields that are record fields, from the record (an empty one: its default)."""
    values = {}
    for name in section.model_fields:
        if name not in RECORD_FIELDS:
            continue
        value, default = restaurant.get(name), record_default(name)
        if not value and default is not None:
            value = default  # e.g. an empty country: the record's "NZ"
        values[name] = value
    return values


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` laid over `base`: nested objects merge key by key, anything else replaces."""
    merged = _copied(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _copied(value)
    return merged


_IMMUTABLE = (str, int, float, bool, type(None), Decimal)


def _copied(value: Any) -> Any:
    """A deep copy of JSON-like data, without deepcopy's per-value bookkeeping (a REST body's
    settings may hold a million values; deepcopy took a second over them)."""
    if isinstance(value, _IMMUTABLE):
        return value
    if type(value) is dict:
        return {key: _copied(child) for key, child in value.items()}
    if type(value) is list:
        if all(isinstance(child, _IMMUTABLE) for child in value):
            return value.copy()
        return [_copied(child) for child in value]
    return copy.deepcopy(value)


def build_config(
    restaurant: Mapping[str, Any],
    common: Mapping[str, Any] | None = None,
    override: Mapping[str, Any] | None = None,
) -> RegistrationConfig:
    """Defaults from the restaurant, then the batch's common settings, then the override."""
    merged = deep_merge(defaults_from_restaurant(restaurant), common or {})
    merged = deep_merge(merged, override or {})
    return RegistrationConfig.model_validate(merged)


def settings_problems(settings: Mapping[str, Any], prefix: str = "settings") -> list[Problem]:
    """Every invalid field of a batch's common settings, checked against an empty restaurant."""
    try:
        RegistrationConfig.model_validate(deep_merge({}, settings))
    except ValidationError as exc:
        return problems_from_validation(exc, prefix)
    return []


def problems_from_validation(
    exc: ValidationError,
    prefix: str,
    unknown: str = "a known setting",
    model: type[BaseModel] | None = None,
) -> list[Problem]:
    """One Problem per pydantic error, with a dotted field path under `prefix`.

    An unknown key is "not <unknown>" and the valid keys at its place in `model` (the
    registration configuration unless given) are named; so are the choices of a vocabulary.
    """
    problems = []
    for error in exc.errors():
        parts = (prefix, *error["loc"])
        path = ".".join(str(part) for part in parts if part not in ("", "[key]"))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            keys = known_keys(model or RegistrationConfig, error["loc"][:-1])
            noun = unknown if len(error["loc"]) == 1 else "a known field"
            message = f"is not {noun}; choose one of: {', '.join(keys)}"
        elif error["type"] in ("enum", "literal_error"):
            expected = str(error.get("ctx", {}).get("expected", ""))
            choices = expected.replace("'", "").replace(" or ", ", ")
            message = f"{error['input']!r} is not one of: {choices}; choose one of them"
        problems.append(Problem(field=path or "value", message=message))
    return problems


def known_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names of the object at `loc` inside `model` (e.g. ("payment",) -> the payment
    section's), or [] when `loc` leads to no model."""
    kind: Any = model
    for part in loc:
        kind = _inner(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if part not in kind.model_fields:
                return []
            kind = kind.model_fields[str(part)].annotation
        else:  # a list index or a mapping key: the element's type
            args = [a for a in get_args(kind) if a is not type(None)]
            kind = args[-1] if args else None
    kind = _inner(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return list(kind.model_fields)
    return []


def _inner(kind: Any) -> Any:
    """`X` of `X | None`; anything else unchanged."""
    args = [a for a in get_args(kind) if a is not type(None)]
    if type(None) in get_args(kind) and len(args) == 1:
        return args[0]
    return kind
