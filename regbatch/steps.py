"""The twelve registration steps and their dependency graph, declared once as data.

Execution, resume, skipping and display all read `STEPS`. A step's `depends_on` are hard
dependencies: if one fails (or was skipped because of a failure), the step is skipped too. Its
`waits_for` are soft: the step waits for them to finish but runs whatever their outcome
(menu_import runs without CDN images when image_upload failed). `condition` decides whether a
step whose dependencies are satisfied runs at all; it returns the skip reason, or None to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regbatch.config import RegistrationConfig


class StepKey(StrEnum):
    ACCOUNT_REGISTRATION = "account_registration"
    CODE_GENERATION = "code_generation"
    ONBOARDING_USER = "onboarding_user"
    IMAGE_UPLOAD = "image_upload"
    RESTAURANT_REGISTRATION = "restaurant_registration"
    WEBSITE_CONFIGURATION = "website_configuration"
    SERVICES_CONFIGURATION = "services_configuration"
    PAYMENT_CONFIGURATION = "payment_configuration"
    MENU_IMPORT = "menu_import"
    ONBOARDING_SYNC = "onboarding_sync"
    OPTION_SETS = "option_sets"
    ITEM_TAGS = "item_tags"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step retries transient failures, and how long it waits before each retry."""

    retries: int = 3
    delays_s: tuple[float, ...] = (2.0, 4.0, 8.0)

    def delay_before(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1-based); the last delay repeats."""
        if not self.delays_s:
            return 0.0
        return self.delays_s[min(retry_number, len(self.delays_s)) - 1]


# What a condition sees: the job's configuration and the results of finished steps.
Condition = Callable[["RegistrationConfig", Mapping["StepKey", dict[str, Any] | None]], str | None]


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


@dataclass(frozen=True)
class StepSpec:
    """One registration step: what it is, what it needs, when it runs, how it fails and retries."""

    number: int
    key: StepKey
    name: str
    does: str
    depends_on: tuple[StepKey, ...]
    condition: Condition
    condition_text: str
    blocking: bool
    on_failure: str
    timeout_s: float
    waits_for: tuple[StepKey, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def label(self) -> str:
        """The name used for task runs and displays, e.g. '05-restaurant_registration'."""
        return f"{self.number:02d}-{self.key}"

    @property
    def prerequisites(self) -> tuple[StepKey, ...]:
        return self.depends_on + self.waits_for


K = StepKey
MIN = 60.0

STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        1,
        K.ACCOUNT_REGISTRATION,
        "Account registration",
        "creates the owner's platform account",
        (),
        _new_account,
        "config says a new account is needed",
        True,
        "blocking: the job fails, later steps are skipped",
        2 * MIN,
    ),
    StepSpec(
        2,
        K.CODE_GENERATION,
        "Code generation",
        "generates the ordering page's head/body code injections from theme and colours",
        (),
        _always,
        "always",
        False,
        "website_configuration is skipped",
        2 * MIN,
    ),
    StepSpec(
        3,
        K.ONBOARDING_USER,
        "Onboarding user",
        "creates the owner's user in the onboarding system",
        (),
        _onboarding_user,
        "config asks for it",
        False,
        "onboarding_sync is skipped",
        2 * MIN,
    ),
    StepSpec(
        4,
        K.IMAGE_UPLOAD,
        "Image upload",
        "uploads menu item images to the CDN (polls until the upload is done)",
        (),
        _image_upload,
        "a menu is selected and image upload is on",
        False,
        "menu_import still runs, without CDN images",
        10 * MIN,
    ),
    StepSpec(
        5,
        K.RESTAURANT_REGISTRATION,
        "Restaurant registration",
        "registers the restaurant under the account; returns its platform id, subdomain, URLs",
        (K.ACCOUNT_REGISTRATION,),
        _always,
        "always",
        True,
        "blocking",
        3 * MIN,
    ),
    StepSpec(
        6,
        K.WEBSITE_CONFIGURATION,
        "Website configuration",
        "applies code injection, header, logos, colours",
        (K.CODE_GENERATION, K.RESTAURANT_REGISTRATION),
        _injection_produced,
        "code generation produced an injection",
        False,
        "job ends failed, others continue",
        4 * MIN,
    ),
    StepSpec(
        7,
        K.SERVICES_CONFIGURATION,
        "Services configuration",
        "pickup/delivery settings",
        (K.RESTAURANT_REGISTRATION,),
        _always,
        "always",
        False,
        "job ends failed, others continue",
        3 * MIN,
    ),
    StepSpec(
        8,
        K.PAYMENT_CONFIGURATION,
        "Payment configuration",
        "payment setup, optionally returns a Stripe Connect link",
        (K.RESTAURANT_REGISTRATION,),
        _always,
        "always",
        False,
        "job ends failed, others continue",
        3 * MIN,
    ),
    StepSpec(
        9,
        K.MENU_IMPORT,
        "Menu import",
        "imports the menu (CSV built from the menu data)",
        (K.RESTAURANT_REGISTRATION,),
        _menu_selected,
        "a menu is selected",
        False,
        "option_sets and item_tags are skipped",
        2 * MIN,
        waits_for=(K.IMAGE_UPLOAD,),
    ),
    StepSpec(
        10,
        K.ONBOARDING_SYNC,
        "Onboarding sync",
        "pushes the restaurant's data into the onboarding record",
        (K.ONBOARDING_USER, K.RESTAURANT_REGISTRATION),
        _onboarding_sync,
        "config asks for it and step 3 completed",
        False,
        "job ends failed, others continue",
        2 * MIN,
    ),
    StepSpec(
        11,
        K.OPTION_SETS,
        "Option sets",
        "creates the menu's option sets (up to an hour)",
        (K.MENU_IMPORT,),
        _option_sets,
        "config asks for it",
        False,
        "job ends failed",
        60 * MIN,
    ),
    StepSpec(
        12,
        K.ITEM_TAGS,
        "Item tags",
        "creates item tags and maps items onto them (up to an hour)",
        (K.MENU_IMPORT,),
        _item_tags,
        "config asks for it",
        False,
        "job ends failed",
        60 * MIN,
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


def critical_path_length() -> int:
    """The number of steps on the longest prerequisite chain (4: 1 -> 5 -> 9 -> 11)."""
    depth: dict[StepKey, int] = {}
    for spec in STEPS:  # STEPS is in topological order; a test checks it
        depth[spec.key] = 1 + max((depth[d] for d in spec.prerequisites), default=0)
    return max(depth.values())
