"""Run the Alembic migrations programmatically (the only way the schema is created)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from regbatch.db.engine import database_url, get_engine
from regbatch.errors import RegbatchError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url or database_url()
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database up to `revision` (default: the newest)."""
    config = alembic_config(url)
    with _migrating(config.attributes["url"]) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Migrate the database down to `revision` (default: nothing left)."""
    config = alembic_config(url)
    with _migrating(config.attributes["url"]) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@contextmanager
def _migrating(url: str) -> Iterator[Connection]:
    """A connection in one transaction for the migrations.

    On SQLite, foreign keys are off while they run, and checked before the commit. Alembic's
    batch mode changes a table by making a new one, copying the rows and dropping the old one;
    with foreign keys on, SQLite's DROP TABLE would first delete the old table's rows and
    cascade to every row that refers to them (a batch's jobs, their steps, its log). The switch
    only takes effect outside a transaction, so it is made on the driver's connection before
    the transaction begins, and made again after it ends.
    """
    with get_engine(url).connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _driver_execute(connection, "PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    _refuse_broken_references(connection)
        finally:
            if sqlite:
                _driver_execute(connection, "PRAGMA foreign_keys=ON")


def _driver_execute(connection: Connection, statement: str) -> None:
    """Run `statement` on the driver's connection, outside SQLAlchemy's transaction."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(statement)


def _refuse_broken_references(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, row, parent = broken[0][0], broken[0][1], broken[0][2]
        raise RegbatchError(
            f"the migration would leave {len(broken)} row(s) referring to rows that do not "
            f"exist (first: {table} row {row} -> {parent}); it was rolled back, so the "
            "database is as it was: keep a copy of it and report this"
        )


def current_revision(url: str | None = None) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head
