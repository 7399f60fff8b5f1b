"""Integration tests run against the session's migrated PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from regbatch.db import migrate
from regbatch.db.engine import dispose_engines, session_scope
from tests.factories import make_org


@pytest.fixture(autouse=True)
def _database(pg_url: str) -> str:
    return pg_url


@pytest.fixture()
def org_id() -> uuid.UUID:
    with session_scope() as session:
        return make_org(session)


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """Each test that takes it runs twice: None, the suite's PostgreSQL database; then a fresh
    migrated SQLite file, the embedded default."""
    if request.param == "postgresql":
        yield None
        return
    path = f"sqlite:///{tmp_path / 'embedded.db'}"
    migrate.upgrade(path)
    yield path
    dispose_engines()
