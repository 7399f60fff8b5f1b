"""The `regbatch` command line: one sub-app per area, errors as one clear line on stderr."""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from regbatch.api.cli import (
    api_cmd,
    batch_cmd,
    db_cmd,
    demo_cmd,
    org_cmd,
    restaurants_cmd,
    run_cmd,
    sandbox_cmd,
    serve_cmd,
    steps_cmd,
    template_cmd,
    webhook_cmd,
)
from regbatch.api.cli._output import database_failure, report_error
from regbatch.errors import RegbatchError
from regbatch.heap import claim_process
from regbatch.offline import apply_offline_defaults


class _ReportingGroup(TyperGroup):
    """Turns a RegbatchError (or a database failure) anywhere below into one clear stderr
    report and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        from sqlalchemy.exc import DBAPIError

        try:
            return super().invoke(ctx)
        except RegbatchError as exc:
            report_error(exc)
            raise typer.Exit(1) from None
        except DBAPIError as exc:  # never the statement or its parameters: they may hold secrets
            report_error(database_failure(exc))
            raise typer.Exit(1) from None


app = typer.Typer(
    name="regbatch",
    cls=_ReportingGroup,
    help="Register many restaurants on the ordering platform in one batch, with Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_cmd.app, name="db")
app.add_typer(org_cmd.app, name="org")
app.add_typer(restaurants_cmd.app, name="restaurants")
app.add_typer(batch_cmd.app, name="batch")
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(template_cmd.app, name="template")
app.add_typer(webhook_cmd.app, name="webhook")
app.command("register")(run_cmd.register)
app.command("recover")(run_cmd.recover)
app.command("serve")(serve_cmd.serve)
app.command("worker")(serve_cmd.worker)
app.command("demo")(demo_cmd.demo)
app.command("steps")(steps_cmd.steps)
app.add_typer(serve_cmd.deployments_app, name="deployments")
app.add_typer(api_cmd.app, name="api")


def main() -> None:
    """Entry point of the `regbatch` console script: Prefect offline, then the command."""
    apply_offline_defaults()  # no command has imported Prefect yet
    claim_process()  # a batch run here may freeze the start-up heap (regbatch.heap)
    # The CLI shows its own live progress; Prefect's console handler keeps warnings and errors
    # (flow-run logs still reach the Prefect API and its UI in full).
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    app()
