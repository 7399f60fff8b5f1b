"""The typed result of each platform step: what the step returns and what later steps read.

Each step's row in `regbatch.steps` names its result model (`StepSpec.result_model`). A result
is stored as the step's `result_data` (`model_dump(mode="json")`). `already_existed` is true
when the platform answered "already exists" and the result carries the existing ids.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StepResult(_Model):
    """Fields every step result has."""

    already_existed: bool = False


class AccountResult(StepResult):
    account_id: str
    user_id: str
    email: str


class CodeGenerationResult(StepResult):
    head_injection: str
    body_injection: str


class OnboardingUserResult(StepResult):
    onboarding_user_id: str


class UploadedImage(_Model):
    item: str
    url: str
    cdn_url: str


class ImageUploadResult(StepResult):
    upload_id: str
    status: str
    images: list[UploadedImage]


class RestaurantUrls(_Model):
    ordering: str
    admin: str


class RestaurantRegistrationResult(StepResult):
    platform_restaurant_id: str
    subdomain: str
    urls: RestaurantUrls


class WebsiteConfigurationResult(StepResult):
    website_url: str


class ServicesConfigurationResult(StepResult):
    pickup: dict[str, Any]
    delivery: dict[str, Any]


class PaymentConfigurationResult(StepResult):
    payment_id: str
    provider: str
    stripe_connect_url: str | None = None


class MenuImportResult(StepResult):
    platform_menu_id: str
    items_imported: int
    categories_imported: int


class OnboardingSyncResult(StepResult):
    onboarding_user_id: str
    synced: bool


class OptionSetsResult(StepResult):
    option_set_ids: dict[str, str]


class ItemTagsResult(StepResult):
    tag_ids: dict[str, str]
    mapped_items: int
