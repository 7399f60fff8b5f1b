"""Batch templates (saved restaurant selections) and webhook subscriptions (batch outcomes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

CHECK lists are written out literally, as in 0001; tests/integration/test_schema.py compares the
migrated schema with the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "batch_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("lead_stage", sa.String(length=20), nullable=True),
        sa.Column("lead_type", sa.String(length=20), nullable=True),
        sa.Column("min_icp_score", sa.Integer(), nullable=True),
        sa.Column("registration_status", sa.String(length=20), nullable=True),
        sa.Column("max_restaurants", sa.Integer(), nullable=False),
        sa.Column("execution_mode", sa.String(length=20), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("settings", JSON_TYPE, nullable=False),
        sa.Column("breaker_threshold", sa.Numeric(precision=4, scale=3), nullable=False),
        sa.Column("breaker_min_finished", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "lead_stage IN ('cold', 'warm', 'hot')",
            name=op.f("ck_batch_templates_lead_stage_valid"),
        ),
        sa.CheckConstraint(
            "lead_type IN ('inbound', 'outbound')",
            name=op.f("ck_batch_templates_lead_type_valid"),
        ),
        sa.CheckConstraint(
            "registration_status IN ('unregistered', 'in_progress', 'registered', 'failed')",
            name=op.f("ck_batch_templates_registration_status_valid"),
        ),
        sa.CheckConstraint(
            "execution_mode IN ('sequential', 'parallel', 'distributed')",
            name=op.f("ck_batch_templates_execution_mode_valid"),
        ),
        sa.CheckConstraint(
            "min_icp_score BETWEEN 0 AND 10", name=op.f("ck_batch_templates_min_icp_score_range")
        ),
        sa.CheckConstraint(
            "max_restaurants BETWEEN 1 AND 1000",
            name=op.f("ck_batch_templates_max_restaurants_range"),
        ),
        sa.CheckConstraint(
            "concurrency >= 1", name=op.f("ck_batch_templates_concurrency_positive")
        ),
        sa.CheckConstraint(
            "breaker_threshold >= 0 AND breaker_threshold <= 1",
            name=op.f("ck_batch_templates_breaker_threshold_range"),
        ),
        sa.CheckConstraint(
            "breaker_min_finished >= 1",
            name=op.f("ck_batch_templates_breaker_min_finished_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_batch_templates_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_templates")),
        sa.UniqueConstraint("organisation_id", "name", name="uq_batch_templates_org_name"),
    )
    with op.batch_alter_table("batch_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_batch_templates_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", JSON_TYPE, nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "url LIKE 'http://%' OR url LIKE 'https://%'",
            name=op.f("ck_webhook_subscriptions_url_http"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_webhook_subscriptions_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_subscriptions_organisation_id"),
            ["organisation_id"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("webhook_subscriptions")
    op.drop_table("batch_templates")
