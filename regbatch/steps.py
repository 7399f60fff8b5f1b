"""The twelve registration steps, one row each: everything about a step, declared once.

A row (`StepSpec`, keyword-only) holds the step's number and key, its dependencies, the condition
under which it runs, what its failure means, its timeout and retry policy, and how it is called on
the platform: its endpoint, its request builder and its result model. Execution, resume,
skipping, display, the platform client and the sandbox all read `STEPS`; nothing else lists the
steps.

A step's `depends_on` are hard dependencies: if one fails (or was skipped because of a failure),
the step is skipped too. Its `waits_for` are soft: the step waits for them to finish but runs
whatever their outcome (menu_import runs without CDN images when image_upload failed).
`condition` decides whether a step whose dependencies are satisfied runs at all; it returns the
skip reason, or None to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.platform import builders
from regbatch.platform import results as result_models
from regbatch.statuses import STEP_ACTIVE, STEP_FINISHED, StepStatus
from regbatch.step_spec import Condition, RetryPolicy, StepKey, StepSpec

__all__ = [
    "BY_KEY",
    "BY_NUMBER",
    "STEPS",
    "Condition",
    "RetryPolicy",
    "StepKey",
    "StepSpec",
    "critical_path_length",
    "current_step",
    "dependents",
    "step",
]


def _always(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    return None


def _new_account(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.account.create_account:
        return "the owner already has a platform account (account.create_account is false)"
    return None


def _onboarding_user(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.onboarding.create_user:
        return "onboarding is not requested (onboarding.create_user is false)"
    return None


def _image_upload(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.menu.import_menu:
        return "no menu is selected (menu.import_menu is false)"
    if not config.menu.upload_images:
        return "image upload is off (menu.upload_images is false)"
    return None


def _injection_produced(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    generated = results.get(StepKey.CODE_GENERATION) or {}
    if not (generated.get("head_injection") or generated.get("body_injection")):
        return "code generation produced no injection to apply"
    return None


def _menu_selected(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.menu.import_menu:
        return "no menu is selected (menu.import_menu is false)"
    return None


def _onboarding_sync(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.onboarding.sync:
        return "onboarding sync is not requested (onboarding.sync is false)"
    if results.get(StepKey.ONBOARDING_USER) is None:
        return "onboarding_user did not complete, so there is no onboarding record to sync"
    return None


def _option_sets(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.menu.create_option_sets:
        return "option sets are not requested (menu.create_option_sets is false)"
    return None


def _item_tags(config: RegistrationConfig, results: Mapping[StepKey, Any]) -> str | None:
    if not config.menu.create_item_tags:
        return "item tags are not requested (menu.create_item_tags is false)"
    return None


K = StepKey
MIN = 60.0

STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        number=1,
        key=K.ACCOUNT_REGISTRATION,
        name="Account registration",
        does="creates the owner's platform account",
        depends_on=(),
        condition=_new_account,
        condition_text="config says a new account is needed",
        blocking=True,
        on_failure="blocking: the job fails, later steps are skipped",
        timeout_s=2 * MIN,
        path="/api/registration/account",
        build=builders.account_registration,
        result_model=result_models.AccountResult,
    ),
    StepSpec(
        number=2,
        key=K.CODE_GENERATION,
        name="Code generation",
        does="generates the ordering page's head/body code injections from theme and colours",
        depends_on=(),
        condition=_always,
        condition_text="always",
        blocking=False,
        on_failure="website_configuration is skipped",
        timeout_s=2 * MIN,
        path="/api/registration/code-generation",
        build=builders.code_generation,
        result_model=result_models.CodeGenerationResult,
    ),
    StepSpec(
        number=3,
        key=K.ONBOARDING_USER,
        name="Onboarding user",
        does="creates the owner's user in the onboarding system",
        depends_on=(),
        condition=_onboarding_user,
        condition_text="config asks for it",
        blocking=False,
        on_failure="onboarding_sync is skipped",
        timeout_s=2 * MIN,
        path="/api/registration/onboarding-user",
        build=builders.onboarding_user,
        result_model=result_models.OnboardingUserResult,
    ),
    StepSpec(
        number=4,
        key=K.IMAGE_UPLOAD,
        name="Image upload",
        does="uploads menu item images to the CDN (polls until the upload is done)",
        depends_on=(),
        condition=_image_upload,
        condition_text="a menu is selected and image upload is on",
        blocking=False,
        on_failure="menu_import still runs, without CDN images",
        timeout_s=10 * MIN,
        path="/api/menus/{menu_id}/upload-images",
        build=builders.image_upload,
        result_model=result_models.ImageUploadResult,
    ),
    StepSpec(
        number=5,
        key=K.RESTAURANT_REGISTRATION,
        name="Restaurant registration",
        does="registers the restaurant under the account; returns its platform id, subdomain, URLs",
        depends_on=(K.ACCOUNT_REGISTRATION,),
        condition=_always,
        condition_text="always",
        blocking=True,
        on_failure="blocking",
        timeout_s=3 * MIN,
        path="/api/registration/restaurant",
        build=builders.restaurant_registration,
        result_model=result_models.RestaurantRegistrationResult,
    ),
    StepSpec(
        number=6,
        key=K.WEBSITE_CONFIGURATION,
        name="Website configuration",
        does="applies code injection, header, logos, colours",
        depends_on=(K.CODE_GENERATION, K.RESTAURANT_REGISTRATION),
        condition=_injection_produced,
        condition_text="code generation produced an injection",
        blocking=False,
        on_failure="job ends failed, others continue",
        timeout_s=4 * MIN,
        path="/api/registration/website",
        build=builders.website_configuration,
        result_model=result_models.WebsiteConfigurationResult,
    ),
    StepSpec(
        number=7,
        key=K.SERVICES_CONFIGURATION,
        name="Services configuration",
        does="pickup/delivery settings",
        depends_on=(K.RESTAURANT_REGISTRATION,),
        condition=_always,
        condition_text="always",
        blocking=False,
        on_failure="job ends failed, others continue",
        timeout_s=3 * MIN,
        path="/api/registration/services",
        build=builders.services_configuration,
        result_model=result_models.ServicesConfigurationResult,
    ),
    StepSpec(
        number=8,
        key=K.PAYMENT_CONFIGURATION,
        name="Payment configuration",
        does="payment setup, optionally returns a Stripe Connect link",
        depends_on=(K.RESTAURANT_REGISTRATION,),
        condition=_always,
        condition_text="always",
        blocking=False,
        on_failure="job ends failed, others continue",
        timeout_s=3 * MIN,
        path="/api/registration/payment",
        build=builders.payment_configuration,
        result_model=result_models.PaymentConfigurationResult,
    ),
    StepSpec(
        number=9,
        key=K.MENU_IMPORT,
        name="Menu import",
        does="imports the menu (CSV built from the menu data)",
        depends_on=(K.RESTAURANT_REGISTRATION,),
        waits_for=(K.IMAGE_UPLOAD,),
        condition=_menu_selected,
        condition_text="a menu is selected",
        blocking=False,
        on_failure="option_sets and item_tags are skipped",
        timeout_s=2 * MIN,
        path="/api/registration/menu-import",
        build=builders.menu_import,
        result_model=result_models.MenuImportResult,
    ),
    StepSpec(
        number=10,
        key=K.ONBOARDING_SYNC,
        name="Onboarding sync",
        does="pushes the restaurant's data into the onboarding record",
        depends_on=(K.ONBOARDING_USER, K.RESTAURANT_REGISTRATION),
        condition=_onboarding_sync,
        condition_text="config asks for it and step 3 completed",
        blocking=False,
        on_failure="job ends failed, others continue",
        timeout_s=2 * MIN,
        path="/api/registration/onboarding-sync",
        build=builders.onboarding_sync,
        result_model=result_models.OnboardingSyncResult,
    ),
    StepSpec(
        number=11,
        key=K.OPTION_SETS,
        name="Option sets",
        does="creates the menu's option sets (up to an hour)",
        depends_on=(K.MENU_IMPORT,),
        condition=_option_sets,
        condition_text="config asks for it",
        blocking=False,
        on_failure="job ends failed",
        timeout_s=60 * MIN,
        path="/api/registration/option-sets",
        build=builders.option_sets,
        result_model=result_models.OptionSetsResult,
    ),
    StepSpec(
        number=12,
        key=K.ITEM_TAGS,
        name="Item tags",
        does="creates item tags and maps items onto them (up to an hour)",
        depends_on=(K.MENU_IMPORT,),
        condition=_item_tags,
        condition_text="config asks for it",
        blocking=False,
        on_failure="job ends failed",
        timeout_s=60 * MIN,
        path="/api/registration/item-tags",
        build=builders.item_tags,
        result_model=result_models.ItemTagsResult,
    ),
)

BY_KEY: dict[StepKey, StepSpec] = {spec.key: spec for spec in STEPS}
BY_NUMBER: dict[int, StepSpec] = {spec.number: spec for spec in STEPS}


def step(key: StepKey | str) -> StepSpec:
    """The spec of a step by key; raises ValueError naming the valid keys."""
    try:
        return BY_KEY[StepKey(key)]
    except ValueError:
        raise ValueError(
            f"unknown step {key!r}; steps are {', '.join(s.key for s in STEPS)}"
        ) from None


def dependents(key: StepKey) -> set[StepKey]:
    """Every step that (transitively) hard-depends on `key`."""
    found: set[StepKey] = set()
    frontier = [key]
    while frontier:
        current = frontier.pop()
        for spec in STEPS:
            if current in spec.depends_on and spec.key not in found:
                found.add(spec.key)
                frontier.append(spec.key)
    return found


def step_depths() -> dict[StepKey, int]:
    """Each step's depth in the graph: 1 + the deepest of its prerequisites (first steps: 1)."""
    depth: dict[StepKey, int] = {}
    for spec in STEPS:  # STEPS is in topological order; a test checks it
        depth[spec.key] = 1 + max((depth[d] for d in spec.prerequisites), default=0)
    return depth


def critical_path_length() -> int:
    """The number of steps on the longest prerequisite chain (4: 1 -> 5 -> 9 -> 11)."""
    return max(step_depths().values())


def current_step(statuses: Mapping[int, StepStatus]) -> int | None:
    """The step a restaurant is at, from its steps' statuses by number: the first step in
    progress or retrying; else the first pending step whose prerequisites have all finished (the
    one it waits to start); else the first failed step; None when nothing is left."""
    numbers = sorted(statuses)
    active = [n for n in numbers if statuses[n] in STEP_ACTIVE]
    if active:
        return active[0]
    for number in numbers:
        if statuses[number] == StepStatus.PENDING and all(
            statuses.get(BY_KEY[key].number) in STEP_FINISHED
            for key in BY_NUMBER[number].prerequisites
        ):
            return number
    failed = [n for n in numbers if statuses[n] == StepStatus.FAILED]
    return failed[0] if failed else None
