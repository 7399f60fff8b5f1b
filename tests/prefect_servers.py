"""`prefect server start` on PostgreSQL, each in a database of its own: the session's server, and
those of tests that stop or kill theirs. One way to start one, wait for it and clean up after."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from tests.processes import stop_group, wait_answering

PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _admin(asyncpg_url: str) -> Iterator[tuple[Connection, str]]:
    """A connection to the server's `postgres` database, and the name of the URL's database."""
    url = make_url(asyncpg_url)
    admin = create_engine(
        url.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            yield connection, str(url.database)
    finally:
        admin.dispose()


def ensure_database(asyncpg_url: str) -> None:
    with _admin(asyncpg_url) as (connection, name):
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        )
        if not found.scalar():
            connection.execute(text(f'CREATE DATABASE "{name}"'))


def drop_database(asyncpg_url: str) -> None:
    with _admin(asyncpg_url) as (connection, name):
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def database_beside(asyncpg_url: str, suffix: str) -> str:
    """The URL of a database named after `asyncpg_url`'s, with `suffix` and a random part."""
    url = make_url(asyncpg_url)
    name = f"{url.database}_{suffix}_{secrets.token_hex(3)}"
    return url.set(database=name).render_as_string(hide_password=False)


class PrefectServer:
    """A `prefect server start` on 127.0.0.1 and the PostgreSQL database `database` (made if
    missing), logging into `logs` (one file per start). It can be killed and started again on
    the same port and database."""

    def __init__(self, database: str, logs: Path, port: int | None = None) -> None:
        self.database = database
        self.logs = logs
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 90) -> None:
        ensure_database(self.database)
        self.starts += 1
        log = (self.logs / f"prefect-server-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env={
                **os.environ,
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database,
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
                # `regbatch serve` serves the recovery flow on a 5-minute schedule: a scheduled,
                # unscoped recovery would take over batches other tests left stalled (or are
                # stalling on purpose). Tests start every run themselves.
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child holds it
        wait_answering(f"{self.api_url}/health", self.process, timeout_s, "prefect server")

    def kill_9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout_s: float = 30) -> None:
        """SIGTERM to its process group, as Ctrl+C would reach it, and wait until it has exited."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Stop what is left of its process group (SIGTERM, then SIGKILL); the database stays."""
        if self.process is not None:
            stop_group(self.process)
