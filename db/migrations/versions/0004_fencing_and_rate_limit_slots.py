"""Fencing tokens on batches, and the shared turn of platform rate limits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

`lease_token` grows at every start and takeover of a batch; a runner states it in every write,
so a runner whose lease was taken over (frozen, partitioned) can no longer change anything.
`rate_limit_slots` holds the turn of a platform rate limit shared by every process (account
creation: one at a time, a configured spacing apart).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.add_column(
            sa.Column("lease_token", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "rate_limit_slots",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_free_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_limit_slots")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_slots")
    with op.batch_alter_table("registration_batch_jobs") as batch:
        batch.drop_column("lease_token")
