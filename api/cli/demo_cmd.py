"""`regbatch demo`: ten sample restaurants registered on the sandbox platform, end to end."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.markdown import Markdown

from regbatch.api.cli._output import JsonFlag, console, emit
from regbatch.api.cli.batch_cmd import outcome_line
from regbatch.api.cli.progress import BatchWatcher
from regbatch.statuses import BatchStatus
from regbatch.views import BatchDetail


def demo(as_json: JsonFlag = False) -> None:
    """Register ten sample restaurants for real on the embedded default, then retry a failure.

    SQLite, Prefect's embedded server and the sandbox platform in this process: nothing to start.
    With --json, no live progress: the batch (and its retry) as JSON at the end.
    """
    from regbatch.api import demo as setup
    from regbatch.api.running import run_batch
    from regbatch.reporting import summary_markdown
    from regbatch.services.lifecycle import retry_failed
    from regbatch.settings import get_settings

    def say(*text: Any, **options: Any) -> None:
        if not as_json:
            console.print(*text, **options)

    began = time.monotonic()
    database = setup.prepare_environment(get_settings().data_dir)
    prefect = (
        "server at $PREFECT_API_URL"
        if _prefect_url()
        else "embedded server (first start migrates it)"
    )
    say(f"[bold]regbatch demo[/bold]: database {database}, sandbox platform in this process, "
        f"Prefect {prefect}")  # fmt: skip
    demo = setup.set_up()
    retried: BatchDetail | None = None
    try:
        say(
            f"scripted failures: {demo.transient} fails menu_import twice (retried), "
            f"{demo.permanent} fails payment_configuration for good"
        )
        with BatchWatcher(demo.batch_id, show=not as_json):
            detail = run_batch(demo.batch_id, started_by="user:demo")
        say(Markdown(summary_markdown(detail)))
        say(outcome_line(detail), markup=False)
        if detail.failed:
            demo.control.clear_faults()
            say("\nthe platform is fixed; retrying the failed restaurant "
                "(only its failed steps run again):")  # fmt: skip
            retry_id = retry_failed(demo.batch_id, actor="user:demo").batch_id
            with BatchWatcher(retry_id, show=not as_json):
                retried = run_batch(retry_id, started_by="user:demo")
            say(outcome_line(retried), markup=False)
    finally:
        demo.sandbox.stop()
    took = time.monotonic() - began
    say(f"demo finished in {took:.0f} s")
    if as_json:
        emit({"batch": detail, "retry_batch": retried, "seconds": round(took, 1)}, True)
    final = retried or detail
    raise typer.Exit(0 if final.status == BatchStatus.COMPLETED else 1)


def _prefect_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
