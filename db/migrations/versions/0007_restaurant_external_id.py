"""Restaurants carry the organisation's own id for them (`external_id`), unique per organisation:
a re-import matches rows on it (else on the email) and updates instead of duplicating.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("restaurants", sa.Column("external_id", sa.String(length=120), nullable=True))
    op.create_index(
        "uq_restaurants_org_external_id",
        "restaurants",
        ["organisation_id", "external_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_restaurants_org_external_id", table_name="restaurants")
    op.drop_column("restaurants", "external_id")
