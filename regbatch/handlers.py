"""Plugins: handlers that replace a built-in step (for every restaurant or one restaurant type),
and extra steps that join the graph after the twelve.

A plugin is an installed distribution with an entry point in the group `regbatch.step_handlers`
naming a module; the module's functions are marked with the decorators below:

    @step_handler("menu_import", restaurant_type="food_truck")
    async def import_truck_menu(ctx: StepContext) -> dict: ...

    @extra_step("crm_sync", after=("restaurant_registration",), timeout_s=60, retries=3)
    async def crm_sync(ctx: StepContext) -> dict: ...

This module is what a plugin's author uses: the decorators, `StepContext`, and (in
`regbatch.errors`) TransientPlatformError / PermanentPlatformError. The decorators only mark
functions; `regbatch.plugins` reads the marks into a registry and the step graph a batch
records. How a handler's errors and results are recorded is the one rule of
`regbatch.step_outcomes`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.errors import PluginError
from regbatch.restaurant import RestaurantType
from regbatch.step_spec import Condition, RetryPolicy, StepKey
from regbatch.steps import STEPS

ENTRY_POINT_GROUP = "regbatch.step_handlers"
_MARK = "__regbatch_step__"


@dataclass(frozen=True)
class RestaurantInfo:
    """The restaurant a step runs for, as its registration configuration has it."""

    id: str
    name: str | None
    restaurant_type: str
    city: str | None
    email: str | None
    phone: str | None
    address: str | None
    country: str
    cuisine: str | None
    subdomain: str | None
    opening_hours: dict[str, Any] | None

    @classmethod
    def from_config(cls, restaurant_id: str, config: RegistrationConfig) -> RestaurantInfo:
        fields = config.restaurant.model_dump(mode="json")
        return cls(id=restaurant_id, **fields)


@dataclass
class StepContext:
    """What a handler gets: the restaurant, the step, its idempotency key (`job_id:step_key`,
    the same on every attempt and after a resume), the outputs of the job's completed steps by
    key, the merged configuration (no password in it) and Prefect's run logger."""

    restaurant: RestaurantInfo
    step: str
    idempotency_key: str
    outputs: Mapping[str, dict[str, Any]]
    config: RegistrationConfig
    logger: Any
    attempt: int
    _default: Callable[[], Awaitable[dict[str, Any]]] | None = None
    _password: Callable[[], str | None] | None = None

    async def call_default(self) -> dict[str, Any]:
        """Run the built-in step (for handlers that wrap it) and return its result."""
        if self._default is None:
            raise PluginError(
                f"step {self.step!r} is a plugin's extra step and has no built-in step to call; "
                "call_default() is only for handlers of the twelve built-in steps"
            )
        return await self._default()

    def owner_password(self) -> str | None:
        """The owner's platform password in clear, when the restaurant has one (never logged)."""
        return self._password() if self._password is not None else None


Handler = Callable[[StepContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class HandlerMark:
    """`@step_handler`: `fn` replaces built-in step `step` (for one type, or every type)."""

    step: StepKey
    restaurant_type: str | None


@dataclass(frozen=True)
class ExtraStepMark:
    """`@extra_step`: a new step `key` run by the marked function."""

    key: str
    after: tuple[str, ...]
    blocking: bool
    condition: Condition | None
    timeout_s: float
    retries: int
    retry_delays_s: tuple[float, ...]


def _check_coroutine(fn: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise PluginError(
            f"{what} {fn.__module__}.{fn.__qualname__} is not async; declare it "
            "`async def name(ctx: StepContext) -> dict`"
        )


def step_handler(step: str, restaurant_type: str | None = None) -> Callable[[Handler], Handler]:
    """Mark `fn` as the handler of built-in step `step` (for `restaurant_type` only, if given)."""
    try:
        key = StepKey(step)
    except ValueError:
        raise PluginError(
            f"step_handler names unknown step {step!r}; built-in steps are "
            f"{', '.join(s.key for s in STEPS)} (declare new steps with @extra_step)"
        ) from None
    if restaurant_type is not None and restaurant_type not in set(RestaurantType):
        raise PluginError(
            f"step_handler({step!r}) names unknown restaurant_type {restaurant_type!r}; types "
            f"are {', '.join(RestaurantType)}"
        )

    def mark(fn: Handler) -> Handler:
        _check_coroutine(fn, "step handler")
        setattr(fn, _MARK, HandlerMark(key, restaurant_type))
        return fn

    return mark


def extra_step(
    key: str,
    *,
    after: Sequence[str] = (),
    blocking: bool = False,
    condition: Condition | None = None,
    timeout_s: float = 120.0,
    retries: int = RetryPolicy.retries,
    retry_delays_s: Sequence[float] = RetryPolicy.delays_s,
) -> Callable[[Handler], Handler]:
    """Mark `fn` as a new step `key`, run after the steps named in `after`."""
    if not key.isidentifier() or key != key.lower() or len(key) > 40:
        raise PluginError(
            f"extra step key {key!r} is not a lowercase identifier of at most 40 characters; "
            "use a name like 'crm_sync'"
        )
    if timeout_s <= 0 or retries < 0:
        raise PluginError(
            f"extra step {key!r}: timeout_s must be > 0 and retries >= 0 "
            f"(got {timeout_s}, {retries})"
        )
    declared = ExtraStepMark(
        key, tuple(after), blocking, condition, float(timeout_s), retries, tuple(retry_delays_s)
    )

    def mark(fn: Handler) -> Handler:
        _check_coroutine(fn, "extra step")
        setattr(fn, _MARK, declared)
        return fn

    return mark


def target(fn: Callable[..., Any]) -> str:
    """How a handler is named in a batch's graph: `module:function`."""
    return f"{fn.__module__}:{fn.__qualname__}"


def mark_of(fn: Handler) -> HandlerMark | ExtraStepMark:
    """What the decorator declared of `fn`."""
    found: HandlerMark | ExtraStepMark = getattr(fn, _MARK)
    return found


def is_marked(fn: object) -> bool:
    """Whether `fn` is a step handler or an extra step."""
    return callable(fn) and hasattr(fn, _MARK)
