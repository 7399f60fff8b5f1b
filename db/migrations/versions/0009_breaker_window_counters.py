"""The breaker's window kept as two counters on the batch: the jobs finished since the window
opened, and those of them that failed. The breaker read them by counting the batch's jobs at
every job's end, which made a batch of N restaurants count N x N rows in all.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Batches that exist get the counts their jobs give now, as the breaker counted them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_WINDOW_COUNT = """(
    SELECT count(*) FROM registration_jobs j
    WHERE j.batch_id = registration_batch_jobs.id AND j.status IN ({statuses})
    AND (registration_batch_jobs.breaker_window_start IS NULL
         OR j.completed_at >= registration_batch_jobs.breaker_window_start)
)"""


def upgrade() -> None:
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.add_column(
            sa.Column("breaker_window_finished", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("breaker_window_failed", sa.Integer(), server_default="0", nullable=False)
        )
    finished = _WINDOW_COUNT.format(statuses="'completed', 'skipped', 'failed'")
    failed = _WINDOW_COUNT.format(statuses="'failed'")
    op.execute(
        f"UPDATE registration_batch_jobs SET breaker_window_finished = {finished}, "
        f"breaker_window_failed = {failed}"
    )
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.create_check_constraint(
            op.f("ck_registration_batch_jobs_breaker_window_consistent"),
            "breaker_window_failed >= 0 AND breaker_window_finished >= breaker_window_failed",
        )


def downgrade() -> None:
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.drop_constraint(
            op.f("ck_registration_batch_jobs_breaker_window_consistent"), type_="check"
        )
        batch.drop_column("breaker_window_failed")
        batch.drop_column("breaker_window_finished")
