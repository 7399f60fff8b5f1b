"""`regbatch org ...`: organisations."""

from __future__ import annotations

import typer

from regbatch.api.cli import org_key_cmd
from regbatch.api.cli._output import JsonFlag, emit

app = typer.Typer(help="Organisations.", no_args_is_help=True)


@app.command("create")
def create(name: str, as_json: JsonFlag = False) -> None:
    """Create an organisation and print its id."""
    from regbatch.services.catalog import new_organisation

    org_id = new_organisation(name)
    emit({"id": str(org_id), "name": name}, as_json, lambda: typer.echo(str(org_id)))


app.add_typer(org_key_cmd.app, name="key")
