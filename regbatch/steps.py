"""The twelve registration steps, one row each: everything about a step, declared once.

A row (`StepSpec`, keyword-only) holds the step's number and key, its dependencies, the condition
under which it runs, what its failure means, its timeout and retry policy, and how it is called on
the platform: its endpoint, its request builder and its result model. Execution, resume,
skipping, display, the platform client and the sandbox all read `STEPS`. A new step is also a
key in `StepKey` (step_spec.py), its request builder (platform/builders.py) and result model
(platform/results.py) that its row names, and, for the sandbox, a request model
(sandbox/schemas.py) and a handler in the table of sandbox/state.py.

A step's `depends_on` are hard dependencies: if one fails (or was skipped because of a failure),
the step is skipped too. Its `waits_for` are soft: the step waits for them to finish but runs
whatever their outcome (menu_import runs without CDN images when image_upload failed).
`condition` decides whether a step whose dependencies are satisfied runs at all; it returns the
skip reason, or None to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.platform import builders
from regbatch.platform import results as result_models
from regbatch.statuses import STEP_ACTIVE, STEP_FINISHED, StepStatus
from regbatch.step_spec import Condition, ExtraStep, GraphStep, RetryPolicy, StepKey, StepSpec

__all__ = [
    "ANY_TYPE",
    "BUILT_IN",
    "BY_KEY",
    "BY_NUMBER",
    "STEPS",
    "Condition",
    "ExtraStep",
    "GraphStep",
    "HandlerRef",
    "RetryPolicy",
    "StepGraph",
    "StepKey",
    "StepSpec",
    "as_key",
    "critical_path_length",
    "current_step",
    "dependents",
    "is_built_in",
    "step",
    "step_label",
]


def _always(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    return None


def _new_account(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    if not config.account.create_account:
        return "the owner already has a platform account (account.create_account is false)"
    return None


def _onboarding_user(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    if not config.onboarding.create_user:
        return "onboarding is not requested (onboarding.create_user is false)"
    return None


def _image_upload(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    if not config.menu.import_menu:
        return "no menu is selected (menu.import_menu is false)"
    if not config.menu.upload_images:
        return "image upload is off (menu.upload_images is false)"
    return None


def _injection_produced(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    generated = results.get(StepKey.CODE_GENERATION) or {}
    if not (generated.get("head_injection") or generated.get("body_injection")):
        return "code generation produced no injection to apply"
    return None


def _menu_selected(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    if not config.menu.import_menu:
        return "no menu is selected (menu.import_menu is false)"
    return None


def _onboarding_sync(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    if not config.onboarding.sync:
        return "onboarding sync is not requested (onboarding.sync is false)"
    if results.get(StepKey.ONBOARDING_USER) is None:
        return "onboarding_user did not complete, so there is no onboarding record to sync"
    return None


def _option_sets(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    if not config.menu.create_option_sets:
        return "option sets are not requested (menu.create_option_sets is false)"
    return None


def _item_tags(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
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
ANY_TYPE = "*"
"""The restaurant type of a handler that replaces a step for every type."""


def step(key: StepKey | str) -> StepSpec:
    """The spec of a built-in step by key; raises ValueError naming the valid keys."""
    try:
        return BY_KEY[StepKey(key)]
    except ValueError:
        raise ValueError(
            f"unknown step {key!r}; steps are {', '.join(s.key for s in STEPS)}"
        ) from None


def as_key(raw: str) -> str:
    """A stored step key as the graph uses it: the StepKey of a built-in step, else the string."""
    return StepKey(raw) if raw in _BUILT_IN_KEYS else raw


def is_built_in(key: str) -> bool:
    """Whether `key` is one of the twelve built-in steps (not a plugin's extra step)."""
    return key in _BUILT_IN_KEYS


_BUILT_IN_KEYS = frozenset(k.value for k in StepKey)


def step_label(number: int, key: str | None = None) -> str:
    """The display name of step `number` ('05-restaurant_registration', '13-crm_sync')."""
    if number in BY_NUMBER:
        return BY_NUMBER[number].label
    return f"{number:02d}-{key}" if key else f"{number:02d}"


@dataclass(frozen=True)
class HandlerRef:
    """Which plugin's function runs a step: `target` is `module:function`."""

    plugin: str
    target: str

    def __str__(self) -> str:
        return f"{self.target} ({self.plugin})"


@dataclass(frozen=True)
class StepGraph:
    """The steps one batch runs: the twelve built-in ones, then its plugins' extra steps, and
    the handler chosen per (step, restaurant type) where a plugin replaces a built-in step.

    A batch records its graph when it is created (`regbatch.plugins.graph_record`), so plugins
    installed or removed later change neither the batch nor its retry. The default is the
    twelve steps alone.
    """

    steps: tuple[GraphStep, ...] = STEPS
    handlers: Mapping[str, Mapping[str, HandlerRef]] = field(default_factory=dict)
    """step key -> restaurant type (or ANY_TYPE) -> the handler replacing the built-in step."""

    def __post_init__(self) -> None:
        problems = graph_problems(self.steps)
        if problems:
            raise ValueError("invalid step graph: " + "; ".join(problems))

    @property
    def extra_steps(self) -> tuple[ExtraStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, ExtraStep))

    def spec(self, key: str) -> GraphStep:
        """The step by key; ValueError naming the graph's steps."""
        for candidate in self.steps:
            if candidate.key == key:
                return candidate
        raise ValueError(
            f"unknown step {key!r}; this batch's steps are {', '.join(s.key for s in self.steps)}"
        )

    def by_number(self, number: int) -> GraphStep:
        return next(s for s in self.steps if s.number == number)

    def handler_for(self, key: str, restaurant_type: str) -> HandlerRef | None:
        """Who runs step `key` for this type: a plugin's handler, or None for the built-in."""
        spec = self.spec(key)
        if isinstance(spec, ExtraStep):
            return HandlerRef(spec.plugin, spec.handler)
        chosen = self.handlers.get(key, {})
        return chosen.get(restaurant_type) or chosen.get(ANY_TYPE)

    def handler_refs(self) -> set[HandlerRef]:
        """Every handler the graph may run (its extra steps' and its replacements')."""
        refs = {HandlerRef(s.plugin, s.handler) for s in self.extra_steps}
        return refs | {ref for by_type in self.handlers.values() for ref in by_type.values()}

    def dependents(self, key: str) -> set[str]:
        """Every step that (transitively) hard-depends on `key`."""
        found: set[str] = set()
        frontier = [key]
        while frontier:
            current = frontier.pop()
            for spec in self.steps:
                if current in spec.depends_on and spec.key not in found:
                    found.add(spec.key)
                    frontier.append(spec.key)
        return found

    def depths(self) -> dict[str, int]:
        """Each step's depth: 1 + the deepest of its prerequisites (first steps: 1)."""
        depth: dict[str, int] = {}
        for spec in self.steps:  # in topological order: graph_problems checks it
            depth[spec.key] = 1 + max((depth[d] for d in spec.prerequisites), default=0)
        return depth


def graph_problems(steps: Sequence[GraphStep]) -> list[str]:
    """What is wrong with a graph: duplicate keys or numbers, unknown dependencies, cycles (a
    step may only depend on steps before it, so any cycle shows as a forward dependency)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for position, spec in enumerate(steps):
        if spec.key in seen:
            problems.append(
                f"step key {spec.key!r} is declared twice (steps {seen[spec.key]} "
                f"and {spec.number}); give the extra step another key"
            )
        seen.setdefault(spec.key, spec.number)
        if spec.number != position + 1:
            problems.append(f"step {spec.key!r} is numbered {spec.number}, expected {position + 1}")
    keys = {s.key for s in steps}
    for spec in steps:
        for dep in spec.prerequisites:
            if dep not in keys:
                problems.append(
                    f"step {spec.key!r} runs after unknown step {dep!r}; steps are "
                    f"{', '.join(sorted(keys))}"
                )
            elif seen[dep] >= spec.number:
                problems.append(
                    f"step {spec.key!r} runs after {dep!r}, which does not come "
                    "before it: the steps' dependencies form a cycle"
                )
    return problems


BUILT_IN = StepGraph()


def dependents(key: StepKey) -> set[StepKey]:
    """Every built-in step that (transitively) hard-depends on `key`."""
    return {StepKey(k) for k in BUILT_IN.dependents(key)}


def step_depths() -> dict[StepKey, int]:
    """Each built-in step's depth in the graph: 1 + the deepest of its prerequisites."""
    return {StepKey(k): d for k, d in BUILT_IN.depths().items()}


def critical_path_length() -> int:
    """The number of steps on the longest prerequisite chain (4: 1 -> 5 -> 9 -> 11)."""
    return max(step_depths().values())


def current_step(statuses: Mapping[int, StepStatus], graph: StepGraph | None = None) -> int | None:
    """The step a restaurant is at, from its steps' statuses by number: the first step in
    progress or retrying; else the first pending step whose prerequisites have all finished (the
    one it waits to start); else the first failed step; None when nothing is left. `graph` is
    the batch's (its plugin steps included); the twelve built-in steps by default."""
    graph = graph or BUILT_IN
    by_number = {spec.number: spec for spec in graph.steps}
    number_of = {spec.key: spec.number for spec in graph.steps}
    numbers = sorted(statuses)
    active = [n for n in numbers if statuses[n] in STEP_ACTIVE]
    if active:
        return active[0]
    for number in numbers:
        spec = by_number.get(number)
        prerequisites = spec.prerequisites if spec else ()
        if statuses[number] == StepStatus.PENDING and all(
            statuses.get(number_of.get(key, 0)) in STEP_FINISHED for key in prerequisites
        ):
            return number
    failed = [n for n in numbers if statuses[n] == StepStatus.FAILED]
    return failed[0] if failed else None
