"""Engines and sessions: one engine per database URL, sessions that the caller commits.

Usage: `with session_scope() as session: ...` commits on success and rolls back on error.
Data functions elsewhere take a session and never commit.

SQLite (the embedded default) gets WAL, a busy timeout and `BEGIN IMMEDIATE` so that concurrent
writers queue instead of failing with "database is locked". PostgreSQL sessions that idle in a
transaction for longer than a runner's lease are ended by the server (a frozen process must not
hold a takeover off).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from regbatch.errors import DatabaseUnavailableError
from regbatch.settings import get_settings


def database_url() -> str:
    return get_settings().resolved_database_url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_ENGINES: dict[str, Engine] = {}
_FACTORIES: dict[str, sessionmaker[Session]] = {}
_LOCK = threading.Lock()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=10,
            max_overflow=20,
        )
        _sqlite_setup(engine)
        return engine
    engine = create_engine(
        url, pool_size=10, max_overflow=30, pool_pre_ping=True, pool_recycle=1800
    )
    _postgresql_setup(engine)
    return engine


def _postgresql_setup(engine: Engine) -> None:
    # A process frozen (or stuck) in the middle of a transaction would hold its locks, and with
    # them a takeover of its batch, for as long as it is frozen: the server ends such a session
    # once it has idled in a transaction for as long as a runner's lease lasts (its work is
    # rolled back, and the frozen process is fenced off when it wakes up).
    idle_ms = int(max(get_settings().lease_seconds, 5.0) * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")
        cursor.close()
        dbapi_connection.commit()


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: REGBATCH_DATABASE_URL), created once per URL."""
    url = url or database_url()
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _create_engine(url)
            _FACTORIES[url] = sessionmaker(_ENGINES[url], expire_on_commit=False)
        return _ENGINES[url]


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back on error."""
    url = url or database_url()
    get_engine(url)
    with _FACTORIES[url].begin() as session:
        yield session


def check_connection(url: str | None = None) -> None:
    """Raise DatabaseUnavailableError, naming the variable, when the database is unreachable."""
    url = url or database_url()
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        safe = make_url(url).render_as_string(hide_password=True)
        raise DatabaseUnavailableError(
            f"REGBATCH_DATABASE_URL={safe} cannot be reached ({reason}); start the database or "
            "fix the URL"
        ) from None


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tests, settings changes)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _FACTORIES.clear()
