"""`regbatch batch ...`: create, inspect and run registration batches."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from regbatch.api.cli import _selection as sel
from regbatch.api.cli._output import (
    JsonFlag,
    WideFlag,
    console,
    emit,
    err_console,
    print_id_table,
    read_settings,
)
from regbatch.api.cli.progress import BatchWatcher
from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD
from regbatch.errors import InvalidInputError, NotFoundError, not_one_of
from regbatch.reporting import (
    batch_duration,
    counts_text,
    duration_text,
    every_restaurant_command,
    shown_of,
)
from regbatch.selection import RestaurantSelection
from regbatch.statuses import BatchStatus, ExecutionMode, JobStatus, StepStatus
from regbatch.steps import step_label
from regbatch.views import BatchDetail, JobView

app = typer.Typer(help="Registration batches.", no_args_is_help=True)
OrgOption = Annotated[str, typer.Option("--org", help="Organisation id or name.")]
SHOW_ROWS = 100
"""The most restaurants `batch show` lists without --all (the failed first)."""
ModeOption = Annotated[str, typer.Option("--mode", help="sequential, parallel or distributed.")]


@app.command("create")
def create(
    org: OrgOption,
    name: Annotated[str, typer.Option("--name", help="The batch's name.")],
    restaurant: sel.RestaurantOption = None,
    from_file: sel.FromFileOption = None,
    everything: sel.AllOption = False,
    city: sel.CityOption = None,
    stage: sel.StageOption = None,
    type_: sel.TypeOption = None,
    status: sel.StatusOption = None,
    search: sel.SearchOption = None,
    min_icp: sel.MinIcpOption = None,
    limit: sel.LimitOption = None,
    mode: ModeOption = ExecutionMode.SEQUENTIAL,
    concurrency: Annotated[int | None, typer.Option(help="Parallel restaurants at most.")] = None,
    settings: Annotated[Path | None, typer.Option(help="JSON file of common settings.")] = None,
    breaker_threshold: Annotated[
        float, typer.Option(help="Failed share that pauses.")
    ] = BREAKER_THRESHOLD,
    breaker_min_finished: Annotated[
        int, typer.Option(help="Finished before it can trip.")
    ] = BREAKER_MIN_FINISHED,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show; write nothing.")] = (
        False
    ),
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a batch (draft); every check runs before anything is written.

    Its restaurants: the ids given (--restaurant, --from-file), then those matching the filters
    (--all, --city, --stage, ...; filters combine), best ICP score first, each once.
    """
    from regbatch.services.batches import create_batch

    given = [*(restaurant or []), *sel.read_id_file(from_file)]
    selection = sel.selection(
        everything=everything, city=city, stage=stage, type=type_, status=status,
        search=search, min_icp=min_icp, limit=limit,
    )  # fmt: skip
    chosen, ids = _choose(org, given, selection, as_json)
    batch_id = create_batch(
        org,
        name=name,
        restaurant_ids=ids,
        settings=read_settings(settings),
        execution_mode=mode,
        concurrency=concurrency,
        breaker_threshold=breaker_threshold,
        breaker_min_finished=breaker_min_finished,
        created_by="user:cli",
        dry_run=dry_run,
    )
    _created(batch_id, name, chosen, dry_run=dry_run, wide=wide, as_json=as_json)


def _choose(
    org: str, given: list[str], selection: RestaurantSelection, as_json: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """The restaurants `batch create` takes (rows for display, and every id, unknown ones
    included so that creating names them); says how many match."""
    from regbatch.services.batches import select_restaurants

    if selection.limit is not None and not selection.selects:
        raise InvalidInputError(
            f"batch not created: --limit {selection.limit} caps the restaurants the filters "
            "match, and none is given; add --all or a filter such as --city or --stage"
        )
    if not given and not selection.selects:
        raise InvalidInputError(
            "batch not created: no restaurant chosen; pass --restaurant ID, --from-file FILE, "
            "--all, or a filter such as --city, --stage, --type, --status or --search"
        )
    found = select_restaurants(org, restaurant_ids=given, selection=selection)
    chosen = found.rows
    ids = list(dict.fromkeys([*(str(uuid.UUID(g)) for g in given), *(r["id"] for r in chosen)]))
    if not as_json:
        err_console.print(_match_line(len(ids), found.held), markup=False)
    if not ids:
        raise InvalidInputError(
            "batch not created: no restaurant matches the filters; widen them (see "
            "`regbatch restaurants list --org ORG`)"
        )
    return chosen, ids


def _match_line(count: int, held: int) -> str:
    line = f"{count} restaurant{'' if count == 1 else 's'} match"
    if held:
        line += (
            f"; {held} more left out: an unfinished batch holds them (see `regbatch batch list`)"
        )
    return line


def _created(
    batch_id: Any,
    name: str,
    chosen: list[dict[str, Any]],
    *,
    dry_run: bool,
    wide: bool,
    as_json: bool,
) -> None:
    """What `batch create` prints: the new batch's id, or (dry run) what it would hold."""
    if not dry_run:
        emit(
            {"batch_id": str(batch_id), "jobs_count": len(chosen)},
            as_json,
            lambda: typer.echo(str(batch_id)),
        )
        return

    def human() -> None:
        print_id_table(sel.RESTAURANT_HEADERS, [sel.restaurant_cells(r) for r in chosen], wide=wide)
        console.print(
            f"dry run: batch {name!r} of {len(chosen)} restaurants passes every check; "
            "nothing was written (run again without --dry-run to create it)",
            markup=False,
        )

    emit({"dry_run": True, "jobs_count": len(chosen), "restaurants": chosen}, as_json, human)


@app.command("show")
def show(
    batch_id: str,
    restaurant: Annotated[
        str | None,
        typer.Argument(help="One restaurant: its # in the batch, its id or its name."),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help=f"Every restaurant, past the first {SHOW_ROWS}.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a batch with its restaurants (past 100, the failed first), or one
    restaurant's twelve steps in full. --json prints every restaurant."""
    from regbatch.services.batches import get_batch, report_batch

    if restaurant is None and not (as_json or show_all):
        report = report_batch(batch_id, SHOW_ROWS)
        render_detail(report)
        return
    detail = get_batch(batch_id)
    if restaurant is None:
        emit(detail, as_json, lambda: render_detail(detail))
        return
    job = find_job(detail, restaurant)
    emit(job, as_json, lambda: render_job(detail, job))


@app.command("list")
def list_(
    org: OrgOption,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses; repeat.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List the organisation's batches, newest first."""
    from regbatch.services.batches import list_batches

    page = list_batches(org, statuses=status or [], limit=limit, cursor=cursor)

    def table() -> None:
        headers = ("id", "name", "status", "total", "done", "failed", "mode", "created")
        rows = [
            [
                str(b.id),
                b.name,
                b.status,
                str(b.total),
                str(b.completed),
                str(b.failed),
                b.execution_mode,
                f"{b.created_at:%Y-%m-%d %H:%M}",
            ]
            for b in page.items
        ]
        print_id_table(headers, rows, wide=wide)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}")

    emit(page, as_json, table)


def render_detail(detail: BatchDetail) -> None:
    """A batch as a heading and one line per restaurant with its current or failing step."""
    console.print(
        f"[bold]{escape(detail.name)}[/bold]  {detail.status}  {counts_text(detail)}  "
        f"{detail.execution_mode} x{detail.concurrency}  id {detail.id}"
    )
    if detail.status == BatchStatus.PAUSED and detail.pause_reason:
        console.print(f"paused: {detail.pause_reason}", markup=False)
    view = _table(("#", False), ("restaurant", True), ("status", False), ("step", False),
                  ("error", True))  # fmt: skip
    for job in detail.jobs:
        shown = _step_name(job, job.current_step)
        failed = next((s for s in job.steps if s.status == StepStatus.FAILED), None)
        view.add_row(
            str(job.position + 1),
            escape(job.restaurant_name),
            job.status,
            shown,
            escape(failed.error_message or "") if failed else "",
        )
    console.print(view)
    if len(detail.jobs) < detail.total:
        console.print(
            f"the {shown_of(len(detail.jobs), detail.total)}{every_restaurant_command(detail.id)}",
            markup=False,
        )
    for job in detail.jobs:  # the steps plugins ran instead of the built-in ones
        ran = [f"{s.step_number:02d}-{s.step_key} by {s.handler}" for s in job.steps if s.handler]
        if ran:
            console.print(f"{job.restaurant_name}: {', '.join(ran)}", markup=False)
    if any(job.status == JobStatus.FAILED for job in detail.jobs):
        console.print(f"one restaurant in full: regbatch batch show {detail.id} NUMBER")


def _table(*columns: tuple[str, bool]) -> Table:
    """A table whose (header, wraps) columns either wrap between words or are never cut."""
    view = Table()
    for header, wraps in columns:
        view.add_column(header, overflow="fold", no_wrap=not wraps)
    return view


def _step_name(job: JobView, number: int | None) -> str:
    """The label of the job's step `number` ('' for none), plugin steps included."""
    if number is None:
        return ""
    key = next((s.step_key for s in job.steps if s.step_number == number), None)
    return step_label(number, key)


def find_job(detail: BatchDetail, ref: str) -> JobView:
    """The batch's job of restaurant `ref`: its number in the batch, its id, or its name."""
    ref = ref.strip()
    for job in detail.jobs:
        if ref in (str(job.position + 1), str(job.restaurant_id), str(job.id)):
            return job
    named = [j for j in detail.jobs if j.restaurant_name.casefold() == ref.casefold()]
    if len(named) == 1:
        return named[0]
    found = f"names {len(named)} restaurants of" if named else "is not in"
    raise NotFoundError(
        f"restaurant {ref!r} {found} batch {detail.id}; give its number "
        f"(1-{len(detail.jobs)}), its id or its name, as `regbatch batch show {detail.id}` "
        "lists them"
    )


def render_job(detail: BatchDetail, job: JobView) -> None:
    """One restaurant of a batch: its status and every step with its full error or skip reason."""
    console.print(
        f"[bold]{escape(job.restaurant_name)}[/bold]  {job.status}  #{job.position + 1} of "
        f"batch {escape(detail.name)}  restaurant {job.restaurant_id}"
    )
    view = _table(("step", False), ("status", False), ("attempts", False), ("took", False),
                  ("detail", True))  # fmt: skip
    for step in job.steps:
        took = duration_text((step.duration_ms or 0) / 1000) if step.duration_ms else ""
        text = step.error_message or step.skip_reason or ""
        view.add_row(
            step_label(step.step_number, step.step_key),
            step.status,
            str(step.attempts),
            took,
            escape(text),
        )
    console.print(view)
    if job.error_message:
        console.print(f"error: {job.error_message}", markup=False)


def run_here(
    batch_id: str, as_json: bool, steps: bool = False, json_extra: dict[str, Any] | None = None
) -> None:
    """Run the batch in this process with live progress; exit 0 only if it completed.

    With --json, prints the batch (and `json_extra`'s keys, e.g. `new_batch_id`).
    """
    from regbatch.api.running import run_batch
    from regbatch.services.batches import parse_uuid
    from regbatch.services.overview import batch_status

    batch_uuid = parse_uuid(batch_id, "batch_id")
    batch_status(batch_uuid)  # a clear "does not exist" before Prefect starts
    with BatchWatcher(batch_uuid, steps=steps, show=not as_json):
        detail = run_batch(batch_uuid, started_by="user:cli")
    if as_json:
        emit({**(json_extra or {}), **detail.model_dump(mode="json")}, True)
    else:
        console.print(outcome_line(detail), markup=False)
        if detail.failed and detail.status != BatchStatus.PAUSED:
            console.print(f"retry the failed ones: regbatch batch retry-failed {detail.id}")
        if detail.status == BatchStatus.PAUSED:
            console.print(f"resume with: regbatch batch resume {detail.id}")
    raise typer.Exit(0 if detail.status == BatchStatus.COMPLETED else 1)


def outcome_line(detail: BatchDetail) -> str:
    """'Q4: completed - 3/3 finished (2 ok, 1 failed, 0 cancelled, 0 skipped) (47m 23s)'."""
    took = duration_text(batch_duration(detail))
    line = f"{detail.name}: {detail.status} - {counts_text(detail)}"
    if detail.status == BatchStatus.PAUSED and detail.pause_reason:
        line += f"; {detail.pause_reason}"
    return f"{line} ({took})" if took else line


@app.command("run")
def run(batch_id: str, as_json: JsonFlag = False) -> None:
    """Run a batch here with live progress (exit 0 only if it completes).

    Takes over a stalled batch (its runner's lease expired); refuses one that a live runner holds.
    """
    run_here(batch_id, as_json)


@app.command("pause")
def pause(batch_id: str, as_json: JsonFlag = False) -> None:
    """Pause a running batch at its next step boundary (running steps finish)."""
    from regbatch.services.lifecycle import pause_batch

    detail = pause_batch(batch_id, actor="user:cli")
    emit(
        {
            "batch_id": str(detail.id),
            "status": detail.status,
            "requested_action": detail.requested_action,
            "paused_at": detail.paused_at,
        },
        as_json,
        lambda: typer.echo(f"pause requested; batch {detail.id} stops at its next step boundary"),
    )


@app.command("resume")
def resume(
    batch_id: str,
    no_run: Annotated[bool, typer.Option("--no-run", help="Only mark it runnable.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Resume a paused batch and run it here from exactly where it stopped."""
    from regbatch.services.lifecycle import resume_batch

    detail = resume_batch(batch_id, actor="user:cli")
    if no_run or detail.status == BatchStatus.IN_PROGRESS:
        emit(
            {"batch_id": str(detail.id), "status": detail.status},
            as_json,
            lambda: typer.echo(f"batch {detail.id} is {detail.status}"),
        )
        return
    run_here(batch_id, as_json)


@app.command("cancel")
def cancel(batch_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a batch: unfinished steps and restaurants end cancelled."""
    from regbatch.api.lifecycle import cancel_batch

    detail = cancel_batch(batch_id, actor="user:cli")
    message = (
        f"batch {detail.id} cancelled"
        if detail.status == BatchStatus.CANCELLED
        else f"cancel requested; batch {detail.id} stops at its next step boundary"
    )
    emit(
        {"batch_id": str(detail.id), "status": detail.status, "cancelled_at": detail.cancelled_at},
        as_json,
        lambda: typer.echo(message),
    )


@app.command("retry-failed")
def retry_failed(
    batch_id: str,
    no_run: Annotated[bool, typer.Option("--no-run", help="Only create the retry batch.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a batch of the failed restaurants (linked to this one) and run it here.

    Safe to repeat: when an earlier call made the retry batch, says so (id and status) and runs
    it only if it never started.
    """
    from regbatch.services.lifecycle import retry_failed as make_retry

    outcome = make_retry(batch_id, actor="user:cli")
    new_id = str(outcome.batch_id)
    fields = {"new_batch_id": new_id, "already_existed": outcome.existed, "status": outcome.status}
    if outcome.existed and (no_run or outcome.status != BatchStatus.DRAFT):
        emit(fields, as_json, lambda: typer.echo(existing_retry_line(new_id, outcome.status)))
        return
    if no_run:
        emit(fields, as_json, lambda: typer.echo(new_id))
        return
    if not as_json:
        made = "already exists (draft); running it" if outcome.existed else ""
        console.print(f"retry batch {new_id} {made}".rstrip())
    run_here(
        new_id, as_json, json_extra={"new_batch_id": new_id, "already_existed": outcome.existed}
    )


def existing_retry_line(batch_id: str, status: str) -> str:
    """What to tell someone whose retry batch an earlier call had already made."""
    ended = f"see it with `regbatch batch show {batch_id}`; its own failed restaurants are "
    ended += f"retried with `regbatch batch retry-failed {batch_id}`"
    hint = {
        "draft": f"run it with `regbatch batch run {batch_id}`",
        "pending": f"it is queued; watch it with `regbatch batch watch {batch_id}`",
        "in_progress": f"watch it with `regbatch batch watch {batch_id}`",
        "paused": f"resume it with `regbatch batch resume {batch_id}`",
        "completed": ended,
        "failed": ended,
    }.get(status, f"see it with `regbatch batch show {batch_id}`")
    return f"retry batch {batch_id} already exists ({status}); {hint}"


@app.command("start")
def start(batch_id: str, as_json: JsonFlag = False) -> None:
    """Queue a batch on Prefect: the `registration-batch` deployment runs it (see `serve`)."""
    from regbatch.services.starts import start_batch

    result = start_batch(batch_id, actor="user:cli")
    emit(
        result,
        as_json,
        lambda: typer.echo(
            f"batch {result.batch_id} queued as flow run {result.flow_run_id} of "
            f"{result.deployment}; watch it with `regbatch batch watch {result.batch_id}`"
        ),
    )


@app.command("watch")
def watch(batch_id: str, as_json: JsonFlag = False) -> None:
    """Follow a batch wherever it runs, until it ends or pauses (exit 0 only if completed)."""
    from regbatch.api.cli.progress import watch_until_finished
    from regbatch.services.batches import parse_uuid

    batch_uuid = parse_uuid(batch_id, "batch_id")
    with BatchWatcher(batch_uuid, show=not as_json):
        detail = watch_until_finished(batch_uuid)
    if as_json:
        emit(detail, True)
    else:
        console.print(outcome_line(detail), markup=False)
    raise typer.Exit(0 if detail.status == BatchStatus.COMPLETED else 1)


@app.command("export")
def export(
    batch_id: str,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Export a batch's results, one row per restaurant (CSV or JSON)."""
    from regbatch.services.batches import parse_uuid
    from regbatch.services.exporting import export_batch

    if fmt not in ("csv", "json"):
        raise InvalidInputError(not_one_of("--format", fmt, ("csv", "json")))
    _content_type, body = export_batch(parse_uuid(batch_id, "batch_id"), None, fmt)
    if output is None:
        typer.echo(body, nl=False)
    else:
        output.write_text(body, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
