"""Plugins' steps: a batch records its step graph, a step row names its handler.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

`registration_batch_jobs.step_graph` is the graph the batch was created with: its plugins' extra
steps (numbered from 13) and the handler chosen per (step, restaurant type); NULL is the twelve
built-in steps alone. `registration_job_steps.handler` is the plugin function (`module:function`)
that runs the step for this restaurant, NULL for a built-in step. Step numbers may now pass 12.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_RANGES = (
    ("registration_job_steps", "step_number_range", "step_number BETWEEN 1 AND {top}"),
    (
        "registration_job_steps",
        "blocked_by_step_range",
        "blocked_by_step IS NULL OR blocked_by_step BETWEEN 1 AND {top}",
    ),
    (
        "registration_jobs",
        "current_step_range",
        "current_step IS NULL OR current_step BETWEEN 1 AND {top}",
    ),
)


def _set_ranges(top: int) -> None:
    for table, name, check in _RANGES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
            batch.create_check_constraint(op.f(f"ck_{table}_{name}"), check.format(top=top))


def upgrade() -> None:
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.add_column(sa.Column("step_graph", JSON_TYPE, nullable=True))
    with op.batch_alter_table("registration_job_steps") as batch:
        batch.add_column(sa.Column("handler", sa.String(length=200), nullable=True))
    _set_ranges(999)


def downgrade() -> None:
    op.execute("DELETE FROM registration_job_steps WHERE step_number > 12")
    op.execute("UPDATE registration_jobs SET current_step = NULL WHERE current_step > 12")
    _set_ranges(12)
    with op.batch_alter_table("registration_job_steps") as batch:
        batch.drop_column("handler")
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.drop_column("step_graph")
