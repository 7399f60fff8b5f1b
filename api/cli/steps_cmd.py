"""`regbatch steps`: the step graph new batches get, with the handler of each step per type."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table

from regbatch.api.cli._output import JsonFlag, console, emit


def steps(as_json: JsonFlag = False) -> None:
    """List the steps: dependencies, and which handler runs each for every restaurant type
    (the built-in steps plus the installed plugins', as a batch created now would record)."""
    from regbatch.plugins import current_registry, describe_graph

    registry = current_registry()
    rows = describe_graph(registry.graph)
    plugins = [{"name": p.name, "module": p.module} for p in registry.plugins]
    emit({"plugins": plugins, "steps": rows}, as_json, lambda: _table(rows, plugins))


def _table(rows: list[dict[str, Any]], plugins: list[dict[str, str]]) -> None:
    view = Table("step", "after", "waits for", "handler")
    view.columns[0].no_wrap = True
    for row in rows:
        view.add_row(
            row["label"],
            ", ".join(row["depends_on"]) or "-",
            ", ".join(row["waits_for"]) or "-",
            _handlers_text(row["handlers"]),
        )
    console.print(view)
    names = ", ".join(f"{p['name']} ({p['module']})" for p in plugins)
    console.print(f"plugins: {names or 'none installed'}")


def _handlers_text(by_type: dict[str, str]) -> str:
    """'built-in', or the handler of each type that differs from the most common one."""
    common, _ = Counter(by_type.values()).most_common(1)[0]
    others = [f"{kind}: {handler}" for kind, handler in by_type.items() if handler != common]
    if not others:
        return common
    return "; ".join([*others, f"other types: {common}"])
