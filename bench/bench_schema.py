"""A migrated PostgreSQL schema of a benchmark's own, dropped when it ends."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

BASE_URL = os.environ.get(
    "REGBATCH_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def bench_schema(prefix: str) -> Iterator[str]:
    """A fresh schema `prefix_<random>` on REGBATCH_BENCH_DATABASE_URL (default: the local `test`
    database), migrated, with REGBATCH_DATABASE_URL pointing at it and a data directory of its
    own; yields its URL, then closes regbatch's connections and drops it."""
    schema = f"{prefix}_{secrets.token_hex(4)}"
    engine = create_engine(BASE_URL)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in BASE_URL else "?"
    url = f"{BASE_URL}{separator}options=-csearch_path%3D{schema}"
    os.environ["REGBATCH_DATABASE_URL"] = url
    os.environ.setdefault("REGBATCH_DATA_DIR", tempfile.mkdtemp(prefix=f"{prefix}-"))
    try:
        from regbatch.db import migrate
        from regbatch.settings import reset_settings

        reset_settings()
        migrate.upgrade(url)
        yield url
    finally:
        from regbatch.db.engine import dispose_engines

        dispose_engines()
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()
