"""Top-level commands that run work: `regbatch register` and `regbatch recover`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regbatch.api.cli._output import JsonFlag, console, emit, read_settings
from regbatch.api.cli.batch_cmd import render_detail, run_here
from regbatch.statuses import BatchStatus


def register(
    restaurant_id: Annotated[str, typer.Argument(help="The restaurant to register.")],
    org: Annotated[str, typer.Option("--org", help="Organisation id or name.")],
    settings: Annotated[Path | None, typer.Option(help="JSON file of settings.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register one restaurant now: a batch of one ("Single: <name>"), run here step by step."""
    from regbatch.services.batches import create_single

    batch_id = create_single(
        org, restaurant_id, settings=read_settings(settings), created_by="user:cli"
    )
    if not as_json:
        console.print(f"batch {batch_id}")
    run_here(str(batch_id), as_json, steps=True, json_extra={"batch_id": str(batch_id)})


def recover(
    org: Annotated[
        str | None,
        typer.Option("--org", help="Only this organisation's batches (id or name)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Find stalled batches (runner gone, lease expired) and run each to its end here."""
    from regbatch.api.running import recover as recover_all

    recovered = recover_all(org)
    if as_json:
        emit({"recovered": recovered}, True)
    elif not recovered:
        typer.echo("no stalled batches" + (f" of {org!r}" if org is not None else ""))
    for detail in recovered if not as_json else []:
        render_detail(detail)
    raise typer.Exit(0 if all(d.status == BatchStatus.COMPLETED for d in recovered) else 1)
