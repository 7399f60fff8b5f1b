"""A batch's jobs in the batch's order from an index: the detail page of a 10,000-restaurant
batch reads its first 100 jobs from it instead of sorting all 10,000 (85 ms -> under 1 ms).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_registration_jobs_batch_position", "registration_jobs", ["batch_id", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_registration_jobs_batch_position", table_name="registration_jobs")
