"""The sandbox platform's request bodies, validated like the real platform would.

Field names are the platform's own (camelCase). Unknown fields are ignored; a missing or malformed
field is a 400 VALIDATION_ERROR naming it (see `first_problem`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from regbatch.steps import StepKey

EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
COLOUR = r"^#[0-9A-Fa-f]{6}$"
URL = r"^https?://[^\s/$.?#][^\s]*$"
SUBDOMAIN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Id = Field(min_length=1, max_length=200)


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Body(_In):
    restaurantId: str = Id


class AccountIn(_Body):
    email: str = Field(pattern=EMAIL)
    password: str = Field(min_length=8, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = None


class CodeGenerationIn(_Body):
    restaurantName: str = Field(min_length=1, max_length=200)
    theme: Literal["light", "dark"] = "light"
    primaryColor: str = Field(pattern=COLOUR)
    secondaryColor: str = Field(pattern=COLOUR)
    logoUrl: str | None = Field(default=None, pattern=URL)


class OnboardingUserIn(_Body):
    email: str = Field(pattern=EMAIL)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = None


class ImageIn(_In):
    item: str = Field(min_length=1)
    url: str = Field(pattern=URL)


class ImageUploadIn(_Body):
    images: list[ImageIn] = Field(min_length=1)


class RestaurantIn(_Body):
    accountId: str = Id
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL)
    phone: str | None = None
    address: str = Field(min_length=1)
    city: str = Field(min_length=1)
    country: str = "NZ"
    openingHours: dict[str, Any] | None = None
    cuisine: str | None = None
    restaurantType: str = "restaurant"
    subdomain: str = Field(pattern=SUBDOMAIN)


class WebsiteIn(_Body):
    platformRestaurantId: str = Id
    headInjection: str = ""
    bodyInjection: str = ""
    headerText: str | None = None
    logoUrl: str | None = Field(default=None, pattern=URL)
    primaryColor: str | None = Field(default=None, pattern=COLOUR)
    secondaryColor: str | None = Field(default=None, pattern=COLOUR)
    theme: Literal["light", "dark"] = "light"


class PickupIn(_In):
    enabled: bool
    prepTimeMinutes: int = Field(default=20, ge=0, le=240)


class DeliveryIn(_In):
    enabled: bool
    radiusKm: float = Field(default=5.0, ge=0, le=100)
    minimumOrder: Decimal = Field(default=Decimal("0"), ge=0)


class ServicesIn(_Body):
    platformRestaurantId: str = Id
    pickup: PickupIn
    delivery: DeliveryIn


class PaymentIn(_Body):
    platformRestaurantId: str = Id
    provider: Literal["stripe", "cash"]
    stripeConnect: bool = False
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class MenuImportIn(_Body):
    platformRestaurantId: str = Id
    csv: str = Field(min_length=1)


class OnboardingSyncIn(_Body):
    onboardingUserId: str = Id
    platformRestaurantId: str = Id
    restaurant: dict[str, Any]


class OptionChoiceIn(_In):
    name: str = Field(min_length=1)
    price: Decimal = Field(default=Decimal("0"), ge=0)


class OptionSetIn(_In):
    name: str = Field(min_length=1)
    required: bool = False
    minChoices: int = Field(default=0, ge=0)
    maxChoices: int = Field(default=1, ge=1)
    options: list[OptionChoiceIn] = Field(min_length=1)


class OptionSetsIn(_Body):
    platformRestaurantId: str = Id
    platformMenuId: str = Id
    optionSets: list[OptionSetIn] = Field(min_length=1)
    itemOptionSets: dict[str, list[str]] = Field(default_factory=dict)


class ItemTagsIn(_Body):
    platformRestaurantId: str = Id
    platformMenuId: str = Id
    tags: list[str] = Field(min_length=1)
    itemTags: dict[str, list[str]] = Field(default_factory=dict)


def first_problem(exc: ValidationError) -> tuple[str, str]:
    """The dotted field name and message of a validation error's first problem (no input value)."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "body"
    return field, str(error["msg"])


# The control API (/_sandbox/*)

FaultKind = Literal["transient", "permanent", "success_false", "timeout"]


class FaultRuleIn(_In):
    model_config = ConfigDict(extra="forbid")
    restaurant: str = "*"
    step: str = "*"
    kind: FaultKind
    times: int | None = Field(default=None, ge=1)
    delay_s: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("step")
    @classmethod
    def _known_step(cls, value: str) -> str:
        return value if value == "*" else _step_key(value)


class FaultsIn(_In):
    model_config = ConfigDict(extra="forbid")
    rules: list[FaultRuleIn] = Field(default_factory=list)
    random_transient_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int | None = None


class LatencyIn(_In):
    model_config = ConfigDict(extra="forbid")
    default_ms: float = Field(default=0.0, ge=0)
    per_step: dict[str, float] = Field(default_factory=dict)

    @field_validator("per_step")
    @classmethod
    def _known_steps(cls, value: dict[str, float]) -> dict[str, float]:
        if any(ms < 0 for ms in value.values()):
            raise ValueError("latencies must be >= 0 ms")
        return {_step_key(key): ms for key, ms in value.items()}


class ConfigIn(_In):
    model_config = ConfigDict(extra="forbid")
    account_spacing_s: float | None = Field(default=None, ge=0)
    image_processing_s: float | None = Field(default=None, ge=0)


def _step_key(value: str) -> str:
    try:
        return str(StepKey(value))
    except ValueError:
        raise ValueError(
            f"unknown step {value!r}; steps are {', '.join(StepKey)} (or * for every step)"
        ) from None
