"""Output helpers shared by every command: --json, tables, and errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from regbatch.errors import InvalidInputError, RegbatchError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WideFlag = Annotated[
    bool, typer.Option("--wide", help="Every column, even wider than the terminal.")
]

console = Console(soft_wrap=True)  # ids and commands stay whole, whatever the width
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print `data` as JSON when asked, else run the human renderer (or print it plainly)."""
    if as_json or human is None:
        sys.stdout.write(json.dumps(_plain(data), indent=2, default=str) + "\n")
    else:
        human()


def read_settings(path: Path | None) -> dict[str, Any]:
    """The JSON object of common settings in `path` ({} when no file is given)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read settings file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"settings file {path} is not JSON (line {exc.lineno}: {exc.msg}); "
            "give a JSON object of common settings"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"settings file {path} holds a JSON {type(data).__name__}; "
            'give an object such as {"payment": {"stripe_connect": true}}'
        )
    return data


def report_error(exc: RegbatchError) -> None:
    """One clear line on stderr; for rejected input, one more line per problem."""
    if isinstance(exc, InvalidInputError):
        err_console.print(f"error: {exc.summary}", markup=False)
        for problem in exc.problems:
            err_console.print(f"  - {problem}", markup=False)
    else:
        err_console.print(f"error: {exc}", markup=False)


def database_failure(exc: Exception) -> RegbatchError:
    """A database error as users may see it: the driver's first line, never SQL or parameters."""
    from regbatch.errors import DatabaseUnavailableError

    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    return DatabaseUnavailableError(
        f"the database named by REGBATCH_DATABASE_URL failed ({type(orig).__name__}: {first}); "
        "check that it is up and migrated (`regbatch db upgrade`), then try again"
    )


ID_WIDTH = 36  # a UUID, never cut
NAME_MIN_WIDTH = 16  # the name column wraps down to this before other columns are dropped


def print_id_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, wide: bool = False
) -> None:
    """A table whose first column is an id, printed whole on every terminal: the second column
    (a name) wraps, then the columns at the right end are dropped until the table fits (and a
    line says which and how to see them). `wide` keeps every column, wider than the terminal."""
    shown = len(headers)
    table = _id_table(headers, rows, shown)
    if wide:
        # a console of its own: print(width=...) never goes beyond the terminal's width
        Console(width=max(_measure(table).maximum, console.width), soft_wrap=True).print(table)
        return
    while shown > 2 and _measure(table).minimum > console.width:
        shown -= 1
        table = _id_table(headers, rows, shown)
    console.print(table)
    if shown < len(headers):
        dropped = ", ".join(headers[shown:])
        console.print(f"({dropped} left out to fit the terminal; --wide or --json shows them)")


def _id_table(headers: Sequence[str], rows: Sequence[Sequence[str]], shown: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for i, header in enumerate(headers[:shown]):
        if i == 0:
            table.add_column(header, no_wrap=True, min_width=ID_WIDTH)
        elif i == 1:
            table.add_column(header, overflow="fold", min_width=NAME_MIN_WIDTH)
        else:
            table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*(str(cell) for cell in row[:shown]))
    return table


def _measure(table: Table) -> Measurement:
    """The table's narrowest and natural widths, unbounded by the terminal."""
    return Measurement.get(console, console.options.update(max_width=10_000), table)
