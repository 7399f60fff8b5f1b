"""Test set-up shared by every tier.

* The environment is made hermetic before anything imports Prefect or reads settings: a temporary
  data directory, a fresh encryption key, Prefect offline.
* `pg_url` is a migrated PostgreSQL schema of its own (on the local server, database `test`), made
  once per session with Alembic and dropped at the end; `REGBATCH_DATABASE_URL` points at it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.processes import stop_group

_TMP = Path(tempfile.mkdtemp(prefix="regbatch-tests-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _ensure_database(asyncpg_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(asyncpg_url)
    admin = create_engine(
        url.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
        ).scalar()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()


def _drop_database(asyncpg_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(asyncpg_url)
    admin = create_engine(
        url.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"prefect server at {url} was not healthy within {timeout_s} s")


def _drain_prefect_workers() -> None:
    """Ship the logs and events still queued in this process before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    EventsWorker.drain_all(timeout=5)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real `prefect server start` on PostgreSQL (its own database), for the whole session."""
    _ensure_database(PREFECT_DATABASE)
    log = open(_TMP / "prefect-server.log", "wb")  # noqa: SIM115 - closed at teardown
    env = {
        **os.environ,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": PREFECT_DATABASE,
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("prefect")),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(PREFECT_PORT),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api_url = os.environ["PREFECT_API_URL"]
    try:
        _wait_healthy(api_url, process, timeout_s=90)
        yield api_url
    finally:
        _drain_prefect_workers()
        stop_group(process)
        log.close()
        if "REGBATCH_TEST_PREFECT_DATABASE_URL" not in os.environ:
            _drop_database(PREFECT_DATABASE)
