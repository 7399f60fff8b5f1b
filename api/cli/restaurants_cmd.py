"""`regbatch restaurants ...`: import and list the restaurants to register."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regbatch.api.cli import _selection as sel
from regbatch.api.cli._output import JsonFlag, WideFlag, emit, print_id_table
from regbatch.restaurant import ImportAction

app = typer.Typer(help="Restaurants (the inputs of registration).", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or name.")]


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="A .csv, a .jsonl (one object a line) or a JSON array file.")
    ],
    org: OrgOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import restaurants: a row matching a restaurant of the organisation (same external_id,
    else same email) updates it, others are created; if any row is bad, nothing is imported."""
    from regbatch.services.catalog import import_file

    outcomes = import_file(org, file, dry_run=dry_run)
    totals = {action.value: 0 for action in ImportAction}
    for outcome in outcomes:
        totals[outcome.action] += 1
    summary = ", ".join(f"{count} {action}" for action, count in totals.items())
    summary += " (dry run: nothing was written)" if dry_run else ""

    def human() -> None:
        for o in outcomes:
            typer.echo(f"row {o.row}: {o.action:<9} {o.id}  {o.name}")
        typer.echo(summary)

    rows = [{"row": o.row, "action": o.action, "id": str(o.id), "name": o.name} for o in outcomes]
    data = {"imported": len(outcomes), **totals, "dry_run": dry_run, "rows": rows}
    emit({**data, "ids": [r["id"] for r in rows]}, as_json, human)


@app.command("list")
def list_(
    org: OrgOption,
    city: sel.CityOption = None,
    stage: sel.StageOption = None,
    type_: sel.TypeOption = None,
    status: sel.StatusOption = None,
    search: sel.SearchOption = None,
    min_icp: sel.MinIcpOption = None,
    limit: sel.LimitOption = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List the organisation's restaurants, best ICP score first (the filters combine)."""
    from regbatch.services.catalog import restaurants_of

    rows = restaurants_of(
        org,
        sel.selection(
            city=city, stage=stage, type=type_, status=status, search=search,
            min_icp=min_icp, limit=limit,
        ),
    )  # fmt: skip

    def table() -> None:
        cells = [sel.restaurant_cells(r) for r in rows]
        print_id_table(sel.RESTAURANT_HEADERS, cells, wide=wide)

    emit(rows, as_json, table)
