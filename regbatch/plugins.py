"""The plugins of a process, checked together, and the step graphs they give.

A `HandlerRegistry` is built from modules, the installed entry points (group
`regbatch.step_handlers`) or explicit ones, by reading the marks `regbatch.handlers`'
decorators left on their functions: nothing is registered at import, so registries never leak
into each other. It refuses conflicting claims, unknown or cyclic dependencies and built-in keys,
and gives the graph a new batch records (`graph_record`); a batch then runs the graph it
recorded (`graph_from_record`), whatever is installed later. `current_registry()` is this
process's (its installed entry points, loaded on first use); `use_registry` puts another in
place inside a block.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.errors import PluginError
from regbatch.handlers import (
    ENTRY_POINT_GROUP,
    ExtraStepMark,
    Handler,
    HandlerMark,
    is_marked,
    mark_of,
    target,
)
from regbatch.restaurant import RestaurantType
from regbatch.step_spec import Condition, ExtraStep, RetryPolicy
from regbatch.steps import ANY_TYPE, STEPS, HandlerRef, StepGraph, is_built_in


@dataclass(frozen=True)
class Plugin:
    """One plugin: its name (the entry point's, or the module's) and its marked functions."""

    name: str
    module: str
    functions: tuple[Handler, ...]

    @classmethod
    def from_module(cls, name: str, module: ModuleType) -> Plugin:
        marked = [fn for fn in vars(module).values() if is_marked(fn)]
        return cls(name, module.__name__, tuple(marked))


class HandlerRegistry:
    """The plugins of a process, checked together, and the step graph they give."""

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self.plugins = tuple(plugins)
        self._functions: dict[str, Handler] = {}
        self._handlers: dict[str, dict[str, HandlerRef]] = {}
        extras: dict[str, tuple[Plugin, Handler, ExtraStepMark]] = {}
        for plugin in self.plugins:
            for fn in plugin.functions:
                self._functions[target(fn)] = fn
                declared = mark_of(fn)
                if isinstance(declared, HandlerMark):
                    self._claim(plugin, fn, declared)
                else:
                    self._add_extra(extras, plugin, fn, declared)
        self.graph = (
            StepGraph(_extra_steps(extras), self._handlers) if self.plugins else StepGraph()
        )

    def _claim(self, plugin: Plugin, fn: Handler, declared: HandlerMark) -> None:
        by_type = self._handlers.setdefault(declared.step, {})
        slot = declared.restaurant_type or ANY_TYPE
        if slot in by_type:
            other = by_type[slot]
            what = "every restaurant type" if slot == ANY_TYPE else f"restaurant type {slot!r}"
            raise PluginError(
                f"two handlers claim step {declared.step!r} for {what}: {other} and "
                f"{target(fn)} ({plugin.name}); uninstall one of the two plugins or give one "
                "a restaurant_type"
            )
        by_type[slot] = HandlerRef(plugin.name, target(fn))

    @staticmethod
    def _add_extra(
        extras: dict[str, tuple[Plugin, Handler, ExtraStepMark]],
        plugin: Plugin,
        fn: Handler,
        declared: ExtraStepMark,
    ) -> None:
        if is_built_in(declared.key):
            raise PluginError(
                f"extra step {declared.key!r} of plugin {plugin.name} has the key of a "
                "built-in step; give it another key (or replace the built-in step with "
                "@step_handler)"
            )
        if declared.key in extras:
            other = extras[declared.key]
            raise PluginError(
                f"two plugins declare extra step {declared.key!r}: {target(other[1])} "
                f"({other[0].name}) and {target(fn)} ({plugin.name}); uninstall one of them"
            )
        extras[declared.key] = (plugin, fn, declared)

    @classmethod
    def from_modules(cls, *modules: ModuleType | str) -> HandlerRegistry:
        """The registry of these modules (each a plugin named after its module)."""
        loaded = [importlib.import_module(m) if isinstance(m, str) else m for m in modules]
        return cls(Plugin.from_module(m.__name__, m) for m in loaded)

    @classmethod
    def from_entry_points(cls, path: Sequence[str] | None = None) -> HandlerRegistry:
        """The registry of the installed plugins (entry point group `regbatch.step_handlers`),
        or of the distributions found on `path` only."""
        plugins = []
        for entry_point in _entry_points(path):
            try:
                with _importable(path):
                    module = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {entry_point.name!r} ({entry_point.value}) could not be loaded: "
                    f"{type(exc).__name__}: {exc}; fix or uninstall its distribution"
                ) from exc
            if not isinstance(module, ModuleType):
                raise PluginError(
                    f"plugin {entry_point.name!r} names {entry_point.value!r}, not a module; "
                    f"the entry point in group {ENTRY_POINT_GROUP} must name a module"
                )
            plugins.append(Plugin.from_module(entry_point.name, module))
        return cls(plugins)

    def resolve(self, ref: HandlerRef) -> Handler | None:
        """The function a batch's graph names, if this process has it."""
        return self._functions.get(ref.target)

    def resolve_target(self, name: str) -> Handler | None:
        """The function named `module:function`, if this process has it."""
        return self._functions.get(name)

    def missing(self, graph: StepGraph) -> list[HandlerRef]:
        """The handlers `graph` needs that this process does not have."""
        return sorted(
            (r for r in graph.handler_refs() if r.target not in self._functions),
            key=lambda r: r.target,
        )

    def condition(self, handler: str) -> Condition | None:
        """The condition of the extra step run by `handler` (`module:function`), if any."""
        fn = self._functions.get(handler)
        declared = mark_of(fn) if fn is not None else None
        return declared.condition if isinstance(declared, ExtraStepMark) else None


def _entry_points(path: Sequence[str] | None) -> list[importlib.metadata.EntryPoint]:
    if path is None:
        found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    else:
        found = [
            ep
            for dist in importlib.metadata.distributions(path=list(path))
            for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)
        ]
    return sorted({ep.name: ep for ep in found}.values(), key=lambda ep: ep.name)


@contextmanager
def _importable(path: Sequence[str] | None) -> Iterator[None]:
    """Modules on `path` importable while a plugin loads (its module stays loaded after)."""
    added = [p for p in path or () if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            sys.path.remove(entry)


def _always(config: RegistrationConfig, results: Mapping[str, Any]) -> str | None:
    return None


def _extra_steps(
    extras: Mapping[str, tuple[Plugin, Handler, ExtraStepMark]],
) -> tuple[Any, ...]:
    """The twelve steps, then the extra ones numbered from 13: in key order, each after the
    steps it runs after (a stable order, whatever the order plugins load in)."""
    ordered: list[str] = []
    placed: set[str] = {s.key for s in STEPS}
    pending = sorted(extras)
    while pending:
        ready = [k for k in pending if all(d in placed for d in extras[k][2].after)]
        if not ready:
            raise PluginError(_unplaceable(extras, pending, placed))
        ordered.append(ready[0])
        placed.add(ready[0])
        pending.remove(ready[0])
    steps: list[Any] = list(STEPS)
    for number, key in enumerate(ordered, start=len(STEPS) + 1):
        plugin, fn, declared = extras[key]
        steps.append(_as_step(number, plugin.name, fn, declared))
    return tuple(steps)


def _unplaceable(
    extras: Mapping[str, tuple[Plugin, Handler, ExtraStepMark]],
    pending: list[str],
    placed: set[str],
) -> str:
    known = placed | set(extras)
    for key in pending:
        unknown = [d for d in extras[key][2].after if d not in known]
        if unknown:
            return (
                f"extra step {key!r} of plugin {extras[key][0].name} runs after unknown step "
                f"{unknown[0]!r}; steps are {', '.join(sorted(known))}"
            )
    return (
        f"extra steps {', '.join(pending)} run after each other in a cycle; remove one of "
        "their `after` dependencies"
    )


def _as_step(number: int, plugin: str, fn: Handler, declared: ExtraStepMark) -> ExtraStep:
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return _extra_step(
        number=number,
        key=declared.key,
        after=declared.after,
        blocking=declared.blocking,
        condition=declared.condition,
        timeout_s=declared.timeout_s,
        retry=RetryPolicy(declared.retries, declared.retry_delays_s),
        does=doc[0] if doc else f"runs {target(fn)}",
        plugin=plugin,
        handler=target(fn),
    )


def _extra_step(
    *,
    number: int,
    key: str,
    after: Sequence[str],
    blocking: bool,
    condition: Condition | None,
    timeout_s: float,
    retry: RetryPolicy,
    does: str,
    plugin: str,
    handler: str,
) -> ExtraStep:
    """An extra step's row of the graph, from its declaration or from a batch's record."""
    return ExtraStep(
        number=number,
        key=key,
        name=key.replace("_", " ").capitalize(),
        does=does,
        depends_on=tuple(after),
        condition=condition or _always,
        condition_text="the plugin's condition" if condition else "always",
        blocking=blocking,
        on_failure="blocking: the steps that depend on it are skipped"
        if blocking
        else "job ends failed, others continue",
        timeout_s=timeout_s,
        retry=retry,
        plugin=plugin,
        handler=handler,
    )


# --- a batch's recorded graph ---------------------------------------------------------------


def graph_record(graph: StepGraph) -> dict[str, Any] | None:
    """What a batch stores of its graph (None: the twelve built-in steps alone)."""
    if not graph.extra_steps and not graph.handlers:
        return None
    return {
        "extra_steps": [
            {
                "number": s.number,
                "key": s.key,
                "after": list(s.depends_on),
                "blocking": s.blocking,
                "timeout_s": s.timeout_s,
                "retries": s.retry.retries,
                "retry_delays_s": list(s.retry.delays_s),
                "does": s.does,
                "plugin": s.plugin,
                "handler": s.handler,
            }
            for s in graph.extra_steps
        ],
        "handlers": {
            str(step): {kind: {"plugin": r.plugin, "handler": r.target} for kind, r in by.items()}
            for step, by in graph.handlers.items()
        },
    }


def recorded_step_count(record: Mapping[str, Any] | None) -> int:
    """How many steps a batch's recorded graph has: the twelve and its extra steps."""
    return len(STEPS) + len((record or {}).get("extra_steps", []))


def graph_from_record(record: Mapping[str, Any] | None, registry: HandlerRegistry) -> StepGraph:
    """A batch's graph as it recorded it; conditions of extra steps come from `registry` (a
    missing plugin's step runs unconditionally here, and is refused when its handler runs)."""
    if not record:
        return StepGraph()
    steps: list[Any] = list(STEPS)
    for raw in record.get("extra_steps", []):
        steps.append(
            _extra_step(
                number=raw["number"],
                key=raw["key"],
                after=raw["after"],
                blocking=raw["blocking"],
                condition=registry.condition(raw["handler"]),
                timeout_s=raw["timeout_s"],
                retry=RetryPolicy(raw["retries"], tuple(raw["retry_delays_s"])),
                does=raw.get("does", ""),
                plugin=raw["plugin"],
                handler=raw["handler"],
            )
        )
    handlers = {
        step: {kind: HandlerRef(r["plugin"], r["handler"]) for kind, r in by.items()}
        for step, by in record.get("handlers", {}).items()
    }
    return StepGraph(tuple(steps), handlers)


def missing_handlers_message(subject: str, missing: Sequence[HandlerRef]) -> str:
    """The error for a batch or restaurant whose recorded handlers this process lacks."""
    plugins = sorted({ref.plugin for ref in missing})
    return (
        f"{subject} needs step handlers this process does not have: "
        f"{', '.join(str(r) for r in missing)}; install the plugin(s) {', '.join(plugins)} "
        f"(entry point group {ENTRY_POINT_GROUP}) where the batch runs, then run it again"
    )


# --- the registry of this process -----------------------------------------------------------

_installed: HandlerRegistry | None = None
_override: HandlerRegistry | None = None


def current_registry() -> HandlerRegistry:
    """The plugins of this process: the installed entry points, loaded on first use (or the
    registry put in place with `use_registry`)."""
    global _installed
    if _override is not None:
        return _override
    if _installed is None:
        _installed = HandlerRegistry.from_entry_points()
    return _installed


@contextmanager
def use_registry(registry: HandlerRegistry) -> Iterator[HandlerRegistry]:
    """Use `registry` as this process's plugins inside the block (tests: a plugin, or none)."""
    global _override
    previous, _override = _override, registry
    try:
        yield registry
    finally:
        _override = previous


def describe_graph(graph: StepGraph) -> list[dict[str, Any]]:
    """The graph as `regbatch steps` shows it: each step, what it runs after, and who runs it
    for each restaurant type ("built-in", or a plugin's `module:function`)."""
    rows = []
    for spec in graph.steps:
        runs = {}
        for kind in RestaurantType:
            ref = graph.handler_for(spec.key, kind)
            runs[str(kind)] = ref.target if ref is not None else "built-in"
        rows.append(
            {
                "number": spec.number,
                "key": str(spec.key),
                "label": spec.label,
                "depends_on": [str(k) for k in spec.depends_on],
                "waits_for": [str(k) for k in spec.waits_for],
                "runs_when": spec.condition_text,
                "timeout_s": spec.timeout_s,
                "retries": spec.retry.retries,
                "plugin": spec.plugin if isinstance(spec, ExtraStep) else None,
                "handlers": runs,
            }
        )
    return rows
