"""Integration tests run against the session's migrated PostgreSQL schema."""

from __future__ import annotations

import uuid

import pytest

from regbatch.db.engine import session_scope
from tests.factories import make_org


@pytest.fixture(autouse=True)
def _database(pg_url: str) -> str:
    return pg_url


@pytest.fixture()
def org_id() -> uuid.UUID:
    with session_scope() as session:
        return make_org(session)
