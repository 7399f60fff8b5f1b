"""What a registration step is: its key, its retry policy, and the one row that declares it.

The twelve rows are in `regbatch.steps` (STEPS); plugins add `ExtraStep`s after them
(`regbatch.handlers`), and `regbatch.steps.StepGraph` holds both. This module imports nothing
of the platform at run time, so the platform's request builders and result models can use
`StepKey` while the table refers to them: `regbatch.config`, `regbatch.platform.builders` and
`regbatch.platform.results` import from here, and `regbatch.steps` imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regbatch.config import RegistrationConfig
    from regbatch.platform.builders import RequestContext
    from regbatch.platform.results import StepResult


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


# What a condition sees: the job's configuration and the results of finished steps, by step key
# (a StepKey for the twelve built-in steps, a plugin's own key for an extra step).
Condition = Callable[["RegistrationConfig", Mapping[str, dict[str, Any] | None]], str | None]
# A step's request body (without `restaurantId`) from the job's configuration and results.
RequestBuilder = Callable[["RequestContext"], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class GraphStep:
    """What the step graph knows of a step, built-in or a plugin's extra step: its place in the
    graph, when it runs, how it fails and retries."""

    number: int
    key: str
    name: str
    does: str
    depends_on: tuple[str, ...]
    """Hard dependencies: if one failed (or was skipped because of a failure), so is this step."""
    waits_for: tuple[str, ...] = ()
    """Soft dependencies: the step waits for them to finish but runs whatever their outcome."""
    condition: Condition
    """Whether a step whose dependencies are satisfied runs: the skip reason, or None to run."""
    condition_text: str
    blocking: bool
    """The domain table's "blocking" label (account and restaurant registration), recorded with
    a plugin step's graph. It decides nothing: what is skipped when a step fails comes from the
    other steps' `depends_on`."""
    on_failure: str
    """What its failure means, in words (the domain's table); `depends_on` makes it so."""
    timeout_s: float
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def label(self) -> str:
        """The name used for task runs and displays, e.g. '05-restaurant_registration'."""
        return f"{self.number:02d}-{self.key}"

    @property
    def prerequisites(self) -> tuple[str, ...]:
        return self.depends_on + self.waits_for


@dataclass(frozen=True, kw_only=True)
class StepSpec(GraphStep):
    """One built-in registration step, everything about it: what it is, what it needs, when it
    runs, how it fails and retries, and how it is called on the platform."""

    key: StepKey
    depends_on: tuple[StepKey, ...]
    waits_for: tuple[StepKey, ...] = ()
    path: str
    """The platform endpoint the step POSTs to (the client calls it, the sandbox serves it);
    image upload's `{menu_id}` comes from its payload, and it answers GET .../{upload_id}."""
    build: RequestBuilder
    result_model: type[StepResult]
    """The typed result: what the step returns, stores as `result_data`, and later steps read."""


@dataclass(frozen=True, kw_only=True)
class ExtraStep(GraphStep):
    """A step a plugin adds to the graph (numbered after the twelve): its handler runs it."""

    plugin: str
    """The plugin (entry point name) that declares it."""
    handler: str
    """The handler that runs it, as `module:function`."""
