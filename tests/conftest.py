"""Test set-up shared by every tier.

* The environment is made hermetic before anything imports Prefect or reads settings: a temporary
  data directory, a fresh encryption key, Prefect offline.
* `pg_url` is a migrated PostgreSQL schema of its own (on the local server, database `test`), made
  once per session with Alembic and dropped at the end; `REGBATCH_DATABASE_URL` points at it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

_TMP = Path(tempfile.mkdtemp(prefix="regbatch-tests-"))
os.environ.update(
    {
        "REGBATCH_DATA_DIR": str(_TMP / "data"),
        "REGBATCH_SECRET_KEY": Fernet.generate_key().decode(),
        "REGBATCH_PLATFORM_SERVICE_KEY": "test-service-key-" + secrets.token_hex(8),
        "PREFECT_HOME": str(_TMP / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_CLI_PROMPT": "false",
    }
)

PG_BASE_URL = os.environ.get(
    "REGBATCH_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def schema_url(schema: str) -> str:
    """The test database URL with its search_path set to `schema`."""
    separator = "&" if "?" in PG_BASE_URL else "?"
    return f"{PG_BASE_URL}{separator}options=-csearch_path%3D{schema}"


def make_schema(schema: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_BASE_URL)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema_url(schema)


def drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_BASE_URL)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated schema of this session's own; REGBATCH_DATABASE_URL points at it."""
    from db import migrate
    from db.engine import dispose_engines
    from regbatch.settings import reset_settings

    schema = f"regbatch_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_schema(schema)
    os.environ["REGBATCH_DATABASE_URL"] = url
    reset_settings()
    migrate.upgrade(url)
    yield url
    dispose_engines()
    drop_schema(schema)
