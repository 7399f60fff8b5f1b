"""The plugin registry's rules: conflicts, type precedence, numbering, graph validation, the
recorded graph, and how a handler's result and errors are taken in (no Prefect, no database)."""

from __future__ import annotations

import uuid
from types import ModuleType
from typing import Any

import pytest

from regbatch.config import RegistrationConfig
from regbatch.errors import PermanentPlatformError, PluginError, TransientPlatformError
from regbatch.handlers import StepContext, extra_step, step_handler
from regbatch.ledger import JobPlan, StepInputs
from regbatch.planning import Run, Skip, StepState, next_decisions
from regbatch.plugins import (
    HandlerRegistry,
    current_registry,
    graph_from_record,
    graph_record,
    use_registry,
)
from regbatch.statuses import JobStatus, StepStatus
from regbatch.steps import BUILT_IN, STEPS, HandlerRef, StepGraph, StepKey
from tests.unit.conftest import make_config

pytestmark = pytest.mark.anyio


def plugin(name: str, **functions: Any) -> ModuleType:
    """A plugin module `name` holding `functions` (as if its file defined them)."""
    module = ModuleType(name)
    for attribute, fn in functions.items():
        fn.__module__, fn.__qualname__ = name, attribute
        setattr(module, attribute, fn)
    return module


def menu_handler(restaurant_type: str | None = None) -> Any:
    @step_handler("menu_import", restaurant_type=restaurant_type)
    async def handler(ctx: StepContext) -> dict[str, Any]:
        return {"by": "plugin"}

    return handler


def extra(key: str, *after: str) -> Any:
    @extra_step(key, after=after)
    async def run(ctx: StepContext) -> dict[str, Any]:
        return {"key": key}

    return run


def test_two_plugins_claiming_the_same_step_and_type_is_an_error_naming_both() -> None:
    one = plugin("plugin_one", trucks=menu_handler("food_truck"))
    two = plugin("plugin_two", more_trucks=menu_handler("food_truck"))
    with pytest.raises(PluginError, match=r"plugin_one:trucks .*plugin_two:more_trucks"):
        HandlerRegistry.from_modules(one, two)
    # different types, or one typed and one untyped, do not conflict
    HandlerRegistry.from_modules(plugin("p_a", h=menu_handler("cafe")), two)


def test_a_type_specific_handler_wins_over_an_untyped_one() -> None:
    anyone = plugin("plugin_any", every=menu_handler())
    trucks = plugin("plugin_trucks", trucks=menu_handler("food_truck"))
    graph = HandlerRegistry.from_modules(anyone, trucks).graph
    assert graph.handler_for("menu_import", "food_truck") == HandlerRef(
        "plugin_trucks", "plugin_trucks:trucks"
    )
    assert graph.handler_for("menu_import", "cafe") == HandlerRef("plugin_any", "plugin_any:every")
    assert graph.handler_for("payment_configuration", "food_truck") is None
    assert [s.key for s in graph.steps] == [s.key for s in STEPS]  # no extra step


def test_extra_steps_are_numbered_after_twelve_in_a_stable_order() -> None:
    one = plugin("plugin_one", b=extra("b_sync", "restaurant_registration"), c=extra("c_mail"))
    two = plugin("plugin_two", a=extra("a_sync", "b_sync"))
    for modules in ((one, two), (two, one)):
        graph = HandlerRegistry.from_modules(*modules).graph
        assert [s.label for s in graph.extra_steps] == ["13-b_sync", "14-a_sync", "15-c_mail"]
        assert graph.spec("a_sync").depends_on == ("b_sync",)
        assert graph.handler_for("a_sync", "cafe") == HandlerRef("plugin_two", "plugin_two:a")


def test_graph_validation_refuses_unknown_after_cycles_and_built_in_keys() -> None:
    with pytest.raises(PluginError, match=r"'late' of plugin p runs after unknown step 'nope'"):
        HandlerRegistry.from_modules(plugin("p", late=extra("late", "nope")))
    with pytest.raises(PluginError, match=r"x_one, x_two run after each other in a cycle"):
        HandlerRegistry.from_modules(
            plugin("p", a=extra("x_one", "x_two"), b=extra("x_two", "x_one"))
        )
    with pytest.raises(PluginError, match=r"'menu_import' of plugin p has the key of a built-in"):
        HandlerRegistry.from_modules(plugin("p", m=extra("menu_import")))
    with pytest.raises(PluginError, match=r"two plugins declare extra step 'sync'"):
        HandlerRegistry.from_modules(plugin("p", s=extra("sync")), plugin("q", s=extra("sync")))


def test_the_decorators_refuse_what_cannot_run() -> None:
    with pytest.raises(PluginError, match=r"unknown step 'menu'.*menu_import"):
        step_handler("menu")
    with pytest.raises(PluginError, match=r"unknown restaurant_type 'van'.*food_truck"):
        step_handler("menu_import", restaurant_type="van")
    with pytest.raises(PluginError, match=r"'CRM sync' is not a lowercase identifier"):
        extra_step("CRM sync")

    def not_async(ctx: StepContext) -> dict[str, Any]:
        return {}

    with pytest.raises(PluginError, match=r"not_async is not async"):
        step_handler("menu_import")(not_async)  # type: ignore[arg-type]


def test_the_step_graph_checks_itself() -> None:
    twelve = StepGraph()
    assert twelve == BUILT_IN and twelve.extra_steps == ()
    shuffled = (STEPS[1], STEPS[0], *STEPS[2:])
    with pytest.raises(ValueError, match="numbered 2, expected 1"):
        StepGraph(shuffled)
    with pytest.raises(ValueError, match="declared twice"):
        StepGraph((*STEPS, STEPS[0]))


def test_a_batch_keeps_the_graph_it_recorded_whatever_is_installed_later() -> None:
    installed = HandlerRegistry.from_modules(
        plugin(
            "p_rec", t=menu_handler("food_truck"), s=extra("crm_push", "restaurant_registration")
        )
    )
    record = graph_record(installed.graph)
    assert record is not None and graph_record(BUILT_IN) is None
    # the plugin is gone: the batch's graph is the same, and says what it misses
    later = HandlerRegistry()
    restored = graph_from_record(record, later)
    assert [s.label for s in restored.steps] == [s.label for s in installed.graph.steps]
    assert restored.handler_for("menu_import", "food_truck") == HandlerRef("p_rec", "p_rec:t")
    assert [r.target for r in later.missing(restored)] == ["p_rec:s", "p_rec:t"]
    assert installed.missing(restored) == []
    # a plugin added later does not add a step to a batch recorded without it
    assert graph_from_record(None, installed) == BUILT_IN


def test_no_plugin_is_installed_in_the_test_environment_and_overrides_do_not_leak() -> None:
    assert current_registry().plugins == ()
    with use_registry(HandlerRegistry.from_modules(plugin("p_leak", s=extra("leak")))) as used:
        assert current_registry() is used
    assert current_registry().plugins == ()


def test_planning_runs_an_extra_step_once_its_dependencies_completed() -> None:
    graph = HandlerRegistry.from_modules(
        plugin("p_plan", s=extra("crm_push", "restaurant_registration"))
    ).graph
    states: dict[str, StepState] = {s.key: StepState(StepStatus.PENDING) for s in graph.steps}
    assert Run("crm_push") not in next_decisions(states, make_config(), graph)
    states[StepKey.ACCOUNT_REGISTRATION] = StepState(StepStatus.COMPLETED, {})
    states[StepKey.RESTAURANT_REGISTRATION] = StepState(StepStatus.COMPLETED, {})
    assert Run("crm_push") in next_decisions(states, make_config(), graph)
    states[StepKey.RESTAURANT_REGISTRATION] = StepState(StepStatus.FAILED)
    skipped = [d for d in next_decisions(states, make_config(), graph) if d.key == "crm_push"]
    assert skipped == [
        Skip("crm_push", "05-restaurant_registration failed", StepKey.RESTAURANT_REGISTRATION)
    ]


def _inputs(config: RegistrationConfig, handler: str) -> StepInputs:
    return StepInputs(
        organisation_id=uuid.uuid4(),
        restaurant_id=uuid.uuid4(),
        idempotency_key="job:crm_push",
        attempt=1,
        config=config,
        results={"restaurant_registration": {"platform_restaurant_id": "r1"}},
        encrypted_password=None,
        handler=handler,
    )


async def test_a_handler_gets_its_context_and_its_result_must_be_a_json_object() -> None:
    from prefect.logging import disable_run_logger

    from regbatch.tasks.steps import run_handler

    seen: list[StepContext] = []

    async def good(ctx: StepContext) -> dict[str, Any]:
        seen.append(ctx)
        return {"crm_id": "c1", "at": [1, 2]}

    async def bad(ctx: StepContext) -> dict[str, Any]:
        return {"when": object()}

    async def extra_calls_default(ctx: StepContext) -> dict[str, Any]:
        return await ctx.call_default()

    config = make_config()
    with disable_run_logger():
        assert await run_handler(good, "crm_push", _inputs(config, "m:good"), 5) == {
            "crm_id": "c1",
            "at": [1, 2],
        }
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            await run_handler(bad, "crm_push", _inputs(config, "m:bad"), 5)
        with pytest.raises(PluginError, match="has no built-in step to call"):
            await run_handler(extra_calls_default, "crm_push", _inputs(config, "m:x"), 5)
    ctx = seen[0]
    assert ctx.idempotency_key == "job:crm_push" and ctx.step == "crm_push"
    assert ctx.outputs["restaurant_registration"] == {"platform_restaurant_id": "r1"}
    assert ctx.restaurant.name == config.restaurant.name
    assert ctx.restaurant.restaurant_type == config.restaurant.restaurant_type
    assert ctx.owner_password() is None


async def test_a_handler_that_overruns_its_timeout_is_a_transient_error() -> None:
    import asyncio

    from prefect.logging import disable_run_logger

    from regbatch.step_outcomes import AfterError, after_error
    from regbatch.tasks.steps import run_handler

    async def slow(ctx: StepContext) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    with (
        disable_run_logger(),
        pytest.raises(TransientPlatformError, match="within 0.05 s") as raised,
    ):
        await run_handler(slow, "crm_push", _inputs(make_config(), "m:slow"), 0.05)
    assert after_error(raised.value, 1, 4) is AfterError.RETRY
    assert after_error(PermanentPlatformError("no"), 1, 4) is AfterError.FAILED


async def test_a_handlers_own_timeout_error_is_not_taken_for_the_steps_timeout() -> None:
    """Only the step's deadline makes the transient "did not finish within" error; a
    TimeoutError the handler raises itself is a fault of its code, like any other exception."""
    from prefect.logging import disable_run_logger

    from regbatch.errors import StepCodeError
    from regbatch.step_outcomes import AfterError, after_error
    from regbatch.tasks.steps import _perform

    async def gives_up(ctx: StepContext) -> dict[str, Any]:
        raise TimeoutError("the CRM did not answer")

    registry = HandlerRegistry.from_modules(
        plugin("p_own_timeout", t=extra_step("crm_push")(gives_up))
    )
    handler = "p_own_timeout:t"
    with (
        use_registry(registry),
        disable_run_logger(),
        pytest.raises(StepCodeError, match="TimeoutError") as raised,
    ):
        await _perform("crm_push", _inputs(make_config(), handler), 5, None)
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert after_error(raised.value, 1, 4) is AfterError.FAILED


def test_a_process_without_the_recorded_handlers_refuses_the_restaurant() -> None:
    from regbatch.flows.restaurant import refuse_without_handlers

    installed = HandlerRegistry.from_modules(plugin("p_ref", t=menu_handler("food_truck")))
    config = make_config(override={"restaurant": {"restaurant_type": "food_truck"}})
    plan = JobPlan(
        job_id=uuid.uuid4(),
        batch_id=uuid.uuid4(),
        organisation_id=uuid.uuid4(),
        restaurant_id=uuid.uuid4(),
        restaurant_name="Truck",
        status=JobStatus.IN_PROGRESS,
        config=config,
        states={s.key: StepState(StepStatus.PENDING) for s in installed.graph.steps},
        graph=installed.graph,
    )
    with use_registry(installed):
        refuse_without_handlers(plan)
    with (
        use_registry(HandlerRegistry()),
        pytest.raises(
            PluginError,
            match=r"restaurant Truck .* needs step handlers .*p_ref:t.*install the plugin",
        ),
    ):
        refuse_without_handlers(plan)


def test_an_extra_step_is_skipped_by_its_condition_with_the_reason() -> None:
    def only_with_menu(config: RegistrationConfig, results: Any) -> str | None:
        return None if config.menu.import_menu else "no menu to push"

    @extra_step("menu_push", after=("menu_import",), condition=only_with_menu)
    async def push(ctx: StepContext) -> dict[str, Any]:
        return {}

    registry = HandlerRegistry.from_modules(plugin("p_cond", push=push))
    restored = graph_from_record(graph_record(registry.graph), registry)
    assert restored.spec("menu_push").condition is only_with_menu
    states: dict[str, StepState] = {s.key: StepState(StepStatus.COMPLETED, {}) for s in STEPS}
    states["menu_push"] = StepState(StepStatus.PENDING)
    no_menu = make_config(override={"menu": {"import_menu": False}})
    assert next_decisions(states, no_menu, restored) == [Skip("menu_push", "no menu to push")]
    assert next_decisions(states, make_config(), restored) == [Run("menu_push")]


def test_the_steps_command_lists_the_graph_and_the_handler_per_type() -> None:
    from tests.cli import cli, cli_json

    registry = HandlerRegistry.from_modules(
        plugin(
            "p_cli", t=menu_handler("food_truck"), s=extra("crm_push", "restaurant_registration")
        )
    )
    with use_registry(registry):
        listed = cli_json("steps")
        table = cli("steps").stdout
    assert listed["plugins"] == [{"name": "p_cli", "module": "p_cli"}]
    rows = {row["key"]: row for row in listed["steps"]}
    assert [row["label"] for row in listed["steps"]][-1] == "13-crm_push"
    assert rows["crm_push"]["depends_on"] == ["restaurant_registration"]
    assert rows["crm_push"]["handlers"]["cafe"] == "p_cli:s"
    assert rows["menu_import"]["handlers"] == {
        **{kind: "built-in" for kind in rows["menu_import"]["handlers"]},
        "food_truck": "p_cli:t",
    }
    assert rows["menu_import"]["waits_for"] == ["image_upload"]
    assert "13-crm_push" in table and "plugins: p_cli (p_cli)" in table


async def test_a_handler_raising_anything_else_fails_its_step_with_the_message_only() -> None:
    from prefect.logging import disable_run_logger

    from regbatch.db.steps import error_record
    from regbatch.errors import StepCodeError
    from regbatch.step_outcomes import AfterError, after_error
    from regbatch.tasks.steps import _perform

    @extra_step("crm_push")
    async def broken(ctx: StepContext) -> dict[str, Any]:
        raise ValueError("no CRM account for Auckland\nsecond line")

    registry = HandlerRegistry.from_modules(plugin("p_err", broken=broken))
    with use_registry(registry), disable_run_logger():
        with pytest.raises(StepCodeError) as raised:
            await _perform("crm_push", _inputs(make_config(), "p_err:broken"), 5, None)
        assert after_error(raised.value, 1, 4) is AfterError.FAILED
        message, details = error_record(raised.value.__cause__)  # type: ignore[arg-type]
    assert message.startswith("internal error (ValueError: no CRM account for Auckland)")
    assert "second line" not in message and details["code"] == "INTERNAL_ERROR"
    # a process without the plugin refuses the step: not an outcome, nothing recorded
    with use_registry(HandlerRegistry()), pytest.raises(PluginError, match="install the plugin"):
        await _perform("crm_push", _inputs(make_config(), "p_err:broken"), 5, None)
    assert after_error(PluginError("x"), 1, 4) is AfterError.INTERRUPTED
