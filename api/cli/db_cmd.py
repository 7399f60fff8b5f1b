"""`regbatch db ...`: schema migrations."""

from __future__ import annotations

import typer

from regbatch.api.cli._output import JsonFlag, emit

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(as_json: JsonFlag = False) -> None:
    """Migrate the database named by REGBATCH_DATABASE_URL to the newest schema.

    Stop the batch runners and workers first, and start them again from the new version: a
    runner of an older version would not keep what the newer schema adds (such as the
    breaker's window counters). A stopped batch is taken over by `regbatch recover`.
    """
    from sqlalchemy.engine import make_url

    from regbatch.db import migrate
    from regbatch.db.engine import check_connection, database_url

    check_connection()
    migrate.upgrade()
    revision = migrate.current_revision()
    where = make_url(database_url()).render_as_string(hide_password=True)
    emit(
        {"revision": revision, "database": where},
        as_json,
        lambda: typer.echo(f"database {where} is at revision {revision}"),
    )
