"""The same migrations run on SQLite, the embedded default, both ways."""

from pathlib import Path

from sqlalchemy import create_engine, inspect

from db import migrate
from db.engine import dispose_engines, session_scope
from db.organisations import create_organisation
from tests.integration.test_schema import TABLES


def test_migrations_run_on_sqlite_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with session_scope(url) as session:
        org = create_organisation(session, "Embedded Ltd")
    with session_scope(url) as session:
        from db.models import Organisation

        stored = session.get(Organisation, org.id)
        assert stored is not None and stored.created_at.tzinfo is not None
    migrate.downgrade(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    dispose_engines()
