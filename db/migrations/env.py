"""Alembic environment: migrates the connection handed over by db.migrate."""

from __future__ import annotations

from alembic import context

from regbatch.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through db.migrate (regbatch db upgrade), not bare alembic")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
