"""`regbatch template ...`: saved restaurant selections that batches are made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from regbatch.api.cli import _selection as sel
from regbatch.api.cli._output import JsonFlag, console, emit, print_id_table, read_settings
from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD

app = typer.Typer(help="Batch templates (saved restaurant selections).", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or name.")]
RefArgument = Annotated[str, typer.Argument(help="The template's name or id.")]


def _filters(template: Any) -> str:
    parts = [
        template.city,
        template.lead_stage,
        template.lead_type,
        f"ICP>={template.min_icp_score}" if template.min_icp_score is not None else None,
        template.registration_status,
    ]
    return ", ".join(p for p in parts if p) or "any"


@app.command("create")
def create(
    org: OrgOption,
    name: Annotated[str, typer.Option("--name", help="The template's name (unique).")],
    city: Annotated[str | None, typer.Option(help="Only this city.")] = None,
    stage: Annotated[str | None, typer.Option(help="Lead stage: cold, warm or hot.")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Lead type: inbound or outbound.")
    ] = None,
    min_icp: Annotated[int | None, typer.Option(help="Lowest ICP score (0-10).")] = None,
    status: Annotated[str | None, typer.Option(help="Registration status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many restaurants (1-1000).")] = 10,
    mode: Annotated[str, typer.Option(help="sequential, parallel or distributed.")] = "sequential",
    concurrency: Annotated[int | None, typer.Option(help="Parallel restaurants at most.")] = None,
    settings: Annotated[Path | None, typer.Option(help="JSON file of common settings.")] = None,
    breaker_threshold: Annotated[
        float, typer.Option(help="Failed share that pauses.")
    ] = BREAKER_THRESHOLD,
    breaker_min_finished: Annotated[
        int, typer.Option(help="Finished before it can trip.")
    ] = BREAKER_MIN_FINISHED,
    as_json: JsonFlag = False,
) -> None:
    """Save a template: which restaurants to pick, and the options of its batches."""
    from regbatch.services.templates import create_template

    template = create_template(
        org,
        name=name,
        city=city,
        lead_stage=stage,
        lead_type=type_,
        min_icp_score=min_icp,
        registration_status=status,
        limit=limit,
        execution_mode=mode,
        concurrency=concurrency,
        settings=read_settings(settings),
        breaker_threshold=breaker_threshold,
        breaker_min_finished=breaker_min_finished,
    )
    emit(template, as_json, lambda: typer.echo(str(template.id)))


@app.command("list")
def list_(org: OrgOption, as_json: JsonFlag = False) -> None:
    """List the organisation's templates."""
    from regbatch.services.templates import list_templates

    templates = list_templates(org)

    def table() -> None:
        rows = [
            [str(t.id), t.name, _filters(t), str(t.limit), f"{t.execution_mode} x{t.concurrency}"]
            for t in templates
        ]
        print_id_table(("id", "name", "filters", "limit", "mode"), rows)

    emit(templates, as_json, table)


@app.command("show")
def show(ref: RefArgument, org: OrgOption, as_json: JsonFlag = False) -> None:
    """Show a template."""
    from regbatch.services.templates import get_template

    template = get_template(org, ref)

    def human() -> None:
        typer.echo(f"{template.name}  id {template.id}")
        typer.echo(
            f"picks: {_filters(template)}, not registered, best ICP first, at most {template.limit}"
        )
        typer.echo(
            f"batches: {template.execution_mode} x{template.concurrency}, breaker "
            f"{template.breaker_threshold:.0%} after {template.breaker_min_finished} finished"
        )
        if template.settings:
            typer.echo(f"settings: {json.dumps(template.settings)}")

    emit(template, as_json, human)


@app.command("delete")
def delete(ref: RefArgument, org: OrgOption, as_json: JsonFlag = False) -> None:
    """Delete a template (batches made from it stay)."""
    from regbatch.services.templates import delete_template

    template = delete_template(org, ref)
    emit(
        {"id": str(template.id), "name": template.name, "deleted": True},
        as_json,
        lambda: typer.echo(f"template {template.name!r} deleted"),
    )


@app.command("preview")
def preview(ref: RefArgument, org: OrgOption, as_json: JsonFlag = False) -> None:
    """The restaurants the template would pick now, in batch order."""
    from regbatch.services.templates import preview_template

    rows = preview_template(org, ref)

    def table() -> None:
        if not rows:
            console.print("no restaurant matches now")
            return
        print_id_table(sel.RESTAURANT_HEADERS, [sel.restaurant_cells(r) for r in rows])

    emit(rows, as_json, table)


@app.command("run")
def run(ref: RefArgument, org: OrgOption, as_json: JsonFlag = False) -> None:
    """Create a batch of the template's restaurants not yet registered, and run it here."""
    from regbatch.api.cli.batch_cmd import run_here
    from regbatch.services.templates import create_batch_from_template

    batch_id = create_batch_from_template(org, ref, created_by="user:cli")
    if batch_id is None:
        emit(
            {"batch_id": None},
            as_json,
            lambda: typer.echo(f"template {ref!r} selects no restaurant right now"),
        )
        return
    if not as_json:
        console.print(f"batch {batch_id}")
    run_here(str(batch_id), as_json, json_extra={"batch_id": str(batch_id)})
