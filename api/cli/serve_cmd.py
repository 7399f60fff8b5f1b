"""`regbatch serve` and `regbatch deployments ...`: run the Prefect deployments."""

from __future__ import annotations

from typing import Annotated

import typer

from regbatch.api.cli._output import JsonFlag, emit

deployments_app = typer.Typer(help="The Prefect deployments.", no_args_is_help=True)


def serve(
    limit: Annotated[int | None, typer.Option(help="Most flow runs at once.")] = None,
) -> None:
    """Serve every deployment here, so runs started from the Prefect UI, REST or CLI execute.

    Needs PREFECT_API_URL (a Prefect server). Each run executes in a subprocess of this one.
    SIGTERM or Ctrl+C stops it within seconds, even with the Prefect server gone.
    """
    from prefect.settings import PREFECT_API_URL

    from regbatch.deployments.serve import serve as serve_all

    if not PREFECT_API_URL.value():
        typer.echo(
            "error: PREFECT_API_URL is not set; start a Prefect server (`prefect server "
            "start`) and export PREFECT_API_URL=http://127.0.0.1:4200/api",
            err=True,
        )
        raise typer.Exit(1)
    outcome = serve_all(limit=limit)
    typer.echo(f"regbatch serve stopped: no more runs start here; {outcome}", err=True)


def worker(
    pool: Annotated[str, typer.Option(help="The work pool to take runs from.")] = "regbatch",
    limit: Annotated[int | None, typer.Option(help="Most flow runs at once.")] = None,
) -> None:
    """Start a Prefect process worker on the work pool, with Prefect offline.

    The same as `prefect worker start --pool POOL --type process`, with the offline settings
    (no telemetry) that every run it starts inherits. Needs PREFECT_API_URL.
    """
    import os
    import sys
    from pathlib import Path

    # Prefect's own command, from this installation (the same environment as regbatch)
    command = [str(Path(sys.executable).with_name("prefect")), "worker", "start"]
    command += ["--pool", pool, "--type", "process"]
    if limit is not None:
        command += ["--limit", str(limit)]
    os.execvp(command[0], command)


@deployments_app.command("yaml")
def yaml() -> None:
    """Print the prefect.yaml rendered from deployments/catalog.py."""
    from regbatch.deployments.catalog import prefect_yaml

    typer.echo(prefect_yaml(), nl=False)


@deployments_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List the deployments (flow/deployment names, schedules)."""
    from regbatch.deployments.catalog import CATALOG

    rows = [
        {
            "deployment": item.full_name,
            "schedules": [
                str(s.get("cron") or f"every {s.get('interval')} s") for s in item.schedules
            ],
        }
        for item in CATALOG
    ]

    def human() -> None:
        for row in rows:
            typer.echo(f"{row['deployment']:<48} {', '.join(row['schedules'])}")

    emit(rows, as_json, human)
