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

from tests.prefect_servers import PrefectServer, drop_database, free_port

_TMP = Path(tempfile.mkdtemp(prefix="regbatch-tests-"))


PREFECT_PORT = free_port()
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
        # Tests call flow code outside a flow run (log filters, webhook delivery): its records
        # stay local instead of warning that they cannot go to the API.
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        # Every Prefect client in the tests talks to the server `prefect_server` starts here.
        "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
        "PREFECT_UI_URL": f"http://127.0.0.1:{PREFECT_PORT}",
        "PREFECT_SERVER_UI_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
        # Steps retry after 2 s, 4 s, 8 s in production; 20, 40, 80 ms here.
        "REGBATCH_RETRY_DELAY_SCALE": "0.01",
        "REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": "0",
        "REGBATCH_IMAGE_POLL_INTERVAL_SECONDS": "0.05",
        # Webhook receivers of the tests listen on 127.0.0.1; tests of the refusal unset it.
        "REGBATCH_WEBHOOK_ALLOW_PRIVATE": "1",
    }
)
os.environ.pop("PREFECT_PROFILE", None)

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
    from regbatch.db import migrate
    from regbatch.db.engine import dispose_engines
    from regbatch.settings import reset_settings

    schema = f"regbatch_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_schema(schema)
    os.environ["REGBATCH_DATABASE_URL"] = url
    reset_settings()
    migrate.upgrade(url)
    yield url
    dispose_engines()
    drop_schema(schema)


# Prefect's own database: one per test run (two runs on one machine never share it), dropped
# at the end of the run.
PREFECT_DATABASE = os.environ.get(
    "REGBATCH_TEST_PREFECT_DATABASE_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/"
    f"regbatch_prefect_test_{os.getpid()}_{secrets.token_hex(3)}",
)


def _drain_prefect_workers() -> None:
    """Ship the logs and events still queued in this process before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    EventsWorker.drain_all(timeout=5)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real `prefect server start` on PostgreSQL (its own database), for the whole session."""
    server = PrefectServer(PREFECT_DATABASE, _TMP, port=PREFECT_PORT)
    try:
        server.start()
        yield server.api_url
    finally:
        _drain_prefect_workers()
        server.stop()
        if "REGBATCH_TEST_PREFECT_DATABASE_URL" not in os.environ:
            drop_database(PREFECT_DATABASE)
