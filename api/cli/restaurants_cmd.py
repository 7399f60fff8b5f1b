"""`regbatch restaurants ...`: import and list the restaurants to register."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from regbatch.api.cli._output import JsonFlag, console, emit

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
    city: Annotated[str | None, typer.Option(help="Only this city.")] = None,
    stage: Annotated[str | None, typer.Option(help="cold, warm or hot.")] = None,
    status: Annotated[str | None, typer.Option(help="Registration status.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the organisation's restaurants, best ICP score first."""
    from regbatch.services.catalog import restaurants_of

    rows = restaurants_of(org, city=city, lead_stage=stage, registration_status=status)

    def table() -> None:
        view = Table("id", "name", "type", "stage", "ICP", "city", "status")
        for r in rows:
            view.add_row(
                r["id"],
                r["name"],
                r["lead_type"],
                r["lead_stage"],
                f"{r['icp_score']}/10",
                r["city"] or "",
                r["registration_status"],
            )
        console.print(view)

    emit(rows, as_json, table)
