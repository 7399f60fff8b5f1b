"""`regbatch demo`: ten sample restaurants registered on the sandbox platform, end to end."""

from __future__ import annotations

import time

import typer
from rich.markdown import Markdown

from regbatch.api.cli._output import console
from regbatch.api.cli.batch_cmd import outcome_line
from regbatch.api.cli.progress import BatchWatcher
from regbatch.statuses import BatchStatus


def demo() -> None:
    """Register ten sample restaurants for real on the embedded default, then retry a failure.

    SQLite, Prefect's embedded server and the sandbox platform in this process: nothing to start.
    """
    from regbatch.api import demo as setup
    from regbatch.api.running import run_batch
    from regbatch.reporting import summary_markdown
    from regbatch.services.lifecycle import retry_failed
    from regbatch.settings import get_settings

    began = time.monotonic()
    database = setup.prepare_environment(get_settings().data_dir)
    console.print(
        f"[bold]regbatch demo[/bold]: database {database}, sandbox platform in this "
        "process, Prefect "
        + (
            "server at $PREFECT_API_URL"
            if _prefect_url()
            else "embedded server (first start migrates it)"
        )
    )
    demo = setup.set_up()
    try:
        console.print(
            f"scripted failures: {demo.transient} fails menu_import twice (retried), "
            f"{demo.permanent} fails payment_configuration for good"
        )
        with BatchWatcher(demo.batch_id):
            detail = run_batch(demo.batch_id, started_by="user:demo")
        console.print(Markdown(summary_markdown(detail)))
        console.print(outcome_line(detail), markup=False)
        if detail.failed:
            demo.control.clear_faults()
            console.print(
                "\nthe platform is fixed; retrying the failed restaurant "
                "(only its failed steps run again):"
            )
            retry_id = retry_failed(demo.batch_id, actor="user:demo").batch_id
            with BatchWatcher(retry_id):
                detail = run_batch(retry_id, started_by="user:demo")
            console.print(outcome_line(detail), markup=False)
    finally:
        demo.sandbox.stop()
    console.print(f"demo finished in {time.monotonic() - began:.0f} s")
    raise typer.Exit(0 if detail.status == BatchStatus.COMPLETED else 1)


def _prefect_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
