"""`regbatch batch ...`: create, inspect and run registration batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli._output import JsonFlag, console, emit
from regbatch.errors import InvalidInputError
from regbatch.statuses import ExecutionMode
from regbatch.views import BatchDetail

app = typer.Typer(help="Registration batches.", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or name.")]


def _read_settings(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read settings file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"settings file {path} is not JSON (line {exc.lineno}: "
            f"{exc.msg}); give a JSON object of common settings"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"settings file {path} holds a JSON {type(data).__name__}; "
            'give an object such as {"payment": {"stripe_connect": true}}'
        )
    return data


@app.command("create")
def create(
    org: OrgOption,
    name: Annotated[str, typer.Option("--name", help="The batch's name.")],
    restaurant: Annotated[list[str], typer.Option("--restaurant", help="A restaurant id; repeat.")],
    mode: Annotated[ExecutionMode, typer.Option("--mode")] = ExecutionMode.SEQUENTIAL,
    concurrency: Annotated[int | None, typer.Option(help="Parallel restaurants at most.")] = None,
    settings: Annotated[Path | None, typer.Option(help="JSON file of common settings.")] = None,
    breaker_threshold: Annotated[float, typer.Option(help="Failed share that pauses.")] = 0.5,
    breaker_min_finished: Annotated[int, typer.Option(help="Finished before it can trip.")] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Create a batch (draft) of restaurants; every check runs before anything is written."""
    from services.batches import create_batch

    batch_id = create_batch(
        org,
        name=name,
        restaurant_ids=restaurant,
        settings=_read_settings(settings),
        execution_mode=mode,
        concurrency=concurrency,
        breaker_threshold=breaker_threshold,
        breaker_min_finished=breaker_min_finished,
        created_by="user:cli",
    )
    emit(
        {"batch_id": str(batch_id), "jobs_count": len(restaurant)},
        as_json,
        lambda: typer.echo(str(batch_id)),
    )


@app.command("show")
def show(batch_id: str, as_json: JsonFlag = False) -> None:
    """Show a batch with its restaurants and their steps."""
    from services.batches import get_batch

    detail = get_batch(batch_id)
    emit(detail, as_json, lambda: render_detail(detail))


@app.command("list")
def list_(
    org: OrgOption,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses; repeat.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the organisation's batches, newest first."""
    from services.batches import list_batches

    page = list_batches(org, statuses=status or [], limit=limit, cursor=cursor)

    def table() -> None:
        view = Table("id", "name", "status", "mode", "total", "done", "failed", "created")
        for b in page.items:
            view.add_row(
                str(b.id),
                b.name,
                b.status,
                b.execution_mode,
                str(b.total),
                str(b.completed),
                str(b.failed),
                f"{b.created_at:%Y-%m-%d %H:%M}",
            )
        console.print(view)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}")

    emit(page, as_json, table)


def render_detail(detail: BatchDetail) -> None:
    """A batch as a heading and one line per restaurant with its current or failing step."""
    console.print(
        f"[bold]{detail.name}[/bold]  {detail.status}  "
        f"{detail.completed + detail.failed + detail.cancelled}/{detail.total} finished "
        f"({detail.completed} ok, {detail.failed} failed)  {detail.execution_mode}"
        f" x{detail.concurrency}  id {detail.id}"
    )
    if detail.pause_reason:
        console.print(f"paused: {detail.pause_reason}")
    view = Table("#", "restaurant", "status", "step", "error")
    for job in detail.jobs:
        step = next((s for s in job.steps if s.step_number == job.current_step), None)
        failed = next((s for s in job.steps if s.status == "failed"), None)
        shown = failed or step
        view.add_row(
            str(job.position + 1),
            job.restaurant_name,
            job.status,
            f"{shown.step_number:02d}-{shown.step_key}" if shown else "",
            (failed.error_message or "") if failed else "",
        )
    console.print(view)
