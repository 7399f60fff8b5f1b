"""`regbatch org key ...`: API keys that let programs call the REST API for an organisation."""

from __future__ import annotations

from typing import Annotated

import typer

from regbatch.api.cli._output import (
    JsonFlag,
    WideFlag,
    emit,
    err_console,
    print_id_table,
)

app = typer.Typer(help="API keys of an organisation (for the REST API).", no_args_is_help=True)
OrgArgument = Annotated[str, typer.Argument(help="Organisation id or name.")]


@app.command("create")
def create(
    org: OrgArgument,
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")] = "default",
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; prints it once (only its hash is stored)."""
    from regbatch.services.api_keys import create_api_key

    created = create_api_key(org, name)

    def human() -> None:
        typer.echo(created.api_key)
        err_console.print(
            f"API key {created.id} ({created.prefix}...) for organisation "
            f"{created.organisation_id}. Store it now: it is not shown again. Send it as "
            "'Authorization: Bearer <key>'.",
            markup=False,
        )

    emit(
        {
            "id": str(created.id),
            "api_key": created.api_key,
            "prefix": created.prefix,
            "organisation_id": str(created.organisation_id),
        },
        as_json,
        human,
    )


@app.command("list")
def list_(org: OrgArgument, wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List the organisation's API keys (never the keys themselves)."""
    from regbatch.services.api_keys import list_api_keys

    keys = list_api_keys(org)

    def table() -> None:
        headers = ("id", "name", "prefix", "created", "last used", "revoked")
        rows = [
            [
                str(key.id),
                key.name,
                f"{key.prefix}...",
                f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
                f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
            ]
            for key in keys
        ]
        print_id_table(headers, rows, wide=wide)

    emit(keys, as_json, table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `org key list`).")],
    org: Annotated[str, typer.Option("--org", help="Organisation id or name.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from regbatch.services.api_keys import revoke_api_key

    key = revoke_api_key(org, key_id)
    emit(key, as_json, lambda: typer.echo(f"API key {key.id} ({key.prefix}...) revoked"))
