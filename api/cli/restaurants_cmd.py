"""`regbatch restaurants ...`: import and list the restaurants to register."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regbatch.api.cli import _selection as sel
from regbatch.api.cli._output import JsonFlag, WideFlag, emit, print_id_table

app = typer.Typer(help="Restaurants (the inputs of registration).", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or name.")]


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A JSON array of restaurants, or a .csv file.")],
    org: OrgOption,
    as_json: JsonFlag = False,
) -> None:
    """Import restaurants: every row is validated and nothing is imported if any row is bad."""
    from regbatch.services.catalog import import_file

    ids = import_file(org, file)
    emit(
        {"imported": len(ids), "ids": [str(i) for i in ids]},
        as_json,
        lambda: typer.echo(f"imported {len(ids)} restaurants"),
    )


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
