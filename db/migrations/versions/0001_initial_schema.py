"""Initial schema: organisations, API keys, restaurants, batches, jobs, steps, operation log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

CHECK lists are written out literally: a migration is a frozen record of the schema it made.
tests/integration/test_schema.py proves they equal the enums in regbatch.statuses and friends.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# The operation log is append-only: on PostgreSQL a trigger refuses UPDATE (deletes only cascade
# from a deleted batch).
APPEND_ONLY_FUNCTION = """
CREATE FUNCTION batch_operation_logs_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'batch_operation_logs is append-only: rows cannot be updated';
END;
$$ LANGUAGE plpgsql
"""
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER batch_operation_logs_no_update BEFORE UPDATE ON batch_operation_logs
FOR EACH ROW EXECUTE FUNCTION batch_operation_logs_append_only()
"""


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_api_keys_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_keys_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "registration_batch_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("execution_mode", sa.String(length=20), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_restaurants", sa.Integer(), nullable=False),
        sa.Column("completed_restaurants", sa.Integer(), nullable=False),
        sa.Column("failed_restaurants", sa.Integer(), nullable=False),
        sa.Column("cancelled_restaurants", sa.Integer(), nullable=False),
        sa.Column("settings", JSON_TYPE, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("retry_of_batch_id", sa.Uuid(), nullable=True),
        sa.Column("breaker_threshold", sa.Numeric(precision=4, scale=3), nullable=False),
        sa.Column("breaker_min_finished", sa.Integer(), nullable=False),
        sa.Column("breaker_window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_action", sa.String(length=10), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "execution_mode IN ('sequential', 'parallel', 'distributed')",
            name=op.f("ck_registration_batch_jobs_execution_mode_valid"),
        ),
        sa.CheckConstraint(
            "requested_action IN ('pause', 'cancel')",
            name=op.f("ck_registration_batch_jobs_requested_action_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'pending', 'in_progress', 'paused', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_registration_batch_jobs_status_valid"),
        ),
        sa.CheckConstraint(
            "breaker_min_finished >= 1",
            name=op.f("ck_registration_batch_jobs_breaker_min_finished_positive"),
        ),
        sa.CheckConstraint(
            "breaker_threshold >= 0 AND breaker_threshold <= 1",
            name=op.f("ck_registration_batch_jobs_breaker_threshold_range"),
        ),
        sa.CheckConstraint(
            "concurrency >= 1", name=op.f("ck_registration_batch_jobs_concurrency_positive")
        ),
        sa.CheckConstraint(
            "total_restaurants >= 0 AND completed_restaurants >= 0 AND failed_restaurants >= 0 AND cancelled_restaurants >= 0 AND completed_restaurants + failed_restaurants + cancelled_restaurants <= total_restaurants",
            name=op.f("ck_registration_batch_jobs_counters_consistent"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_registration_batch_jobs_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["retry_of_batch_id"],
            ["registration_batch_jobs.id"],
            name=op.f("fk_registration_batch_jobs_retry_of_batch_id_registration_batch_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_batch_jobs")),
    )
    with op.batch_alter_table("registration_batch_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_registration_batch_jobs_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_registration_batch_jobs_org_created",
            ["organisation_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_registration_batch_jobs_organisation_id"),
            ["organisation_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_registration_batch_jobs_retry_of_batch_id"),
            ["retry_of_batch_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_registration_batch_jobs_status"), ["status"], unique=False
        )

    op.create_table(
        "restaurants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("city", sa.String(length=120), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("opening_hours", JSON_TYPE, nullable=True),
        sa.Column("cuisine", sa.String(length=120), nullable=True),
        sa.Column("restaurant_type", sa.String(length=20), nullable=False),
        sa.Column("theme", sa.String(length=20), nullable=False),
        sa.Column("primary_color", sa.String(length=7), nullable=True),
        sa.Column("secondary_color", sa.String(length=7), nullable=True),
        sa.Column("logo_url", sa.Text(), nullable=True),
        sa.Column("subdomain", sa.String(length=63), nullable=True),
        sa.Column("lead_type", sa.String(length=20), nullable=False),
        sa.Column("lead_stage", sa.String(length=20), nullable=False),
        sa.Column("icp_score", sa.Integer(), nullable=False),
        sa.Column("registration_status", sa.String(length=20), nullable=False),
        sa.Column("menu", JSON_TYPE, nullable=True),
        sa.Column("account_password_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "lead_stage IN ('cold', 'warm', 'hot')", name=op.f("ck_restaurants_lead_stage_valid")
        ),
        sa.CheckConstraint(
            "lead_type IN ('inbound', 'outbound')", name=op.f("ck_restaurants_lead_type_valid")
        ),
        sa.CheckConstraint(
            "registration_status IN ('unregistered', 'in_progress', 'registered', 'failed')",
            name=op.f("ck_restaurants_registration_status_valid"),
        ),
        sa.CheckConstraint(
            "restaurant_type IN ('restaurant', 'cafe', 'takeaway', 'bar', 'bakery', 'food_truck')",
            name=op.f("ck_restaurants_restaurant_type_valid"),
        ),
        sa.CheckConstraint("theme IN ('light', 'dark')", name=op.f("ck_restaurants_theme_valid")),
        sa.CheckConstraint(
            "icp_score BETWEEN 0 AND 10", name=op.f("ck_restaurants_icp_score_range")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_restaurants_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restaurants")),
    )
    with op.batch_alter_table("restaurants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_restaurants_org_city_stage", ["organisation_id", "city", "lead_stage"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_restaurants_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_restaurants_registration_status"), ["registration_status"], unique=False
        )

    op.create_table(
        "registration_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("restaurant_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("execution_config", JSON_TYPE, nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", JSON_TYPE, nullable=True),
        sa.Column("retry_of_job_id", sa.Uuid(), nullable=True),
        sa.Column("idempotency_root", sa.Uuid(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("dispatch_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled', 'skipped')",
            name=op.f("ck_registration_jobs_status_valid"),
        ),
        sa.CheckConstraint(
            "current_step IS NULL OR current_step BETWEEN 1 AND 12",
            name=op.f("ck_registration_jobs_current_step_range"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["registration_batch_jobs.id"],
            name=op.f("fk_registration_jobs_batch_id_registration_batch_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_registration_jobs_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["restaurant_id"],
            ["restaurants.id"],
            name=op.f("fk_registration_jobs_restaurant_id_restaurants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["retry_of_job_id"],
            ["registration_jobs.id"],
            name=op.f("fk_registration_jobs_retry_of_job_id_registration_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_jobs")),
        sa.UniqueConstraint(
            "batch_id", "restaurant_id", name="uq_registration_jobs_batch_restaurant"
        ),
    )
    with op.batch_alter_table("registration_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registration_jobs_batch_status", ["batch_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registration_jobs_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registration_jobs_restaurant_id"), ["restaurant_id"], unique=False
        )

    op.create_table(
        "batch_operation_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("details", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "operation IN ('batch_created', 'batch_started', 'batch_pause_requested', 'batch_paused', 'batch_resumed', 'batch_cancel_requested', 'batch_cancelled', 'batch_completed', 'batch_failed', 'batch_released', 'lease_taken_over', 'job_started', 'job_completed', 'job_failed', 'job_cancelled', 'job_requeued', 'step_retried', 'step_failed', 'breaker_tripped', 'retry_batch_created', 'webhook_delivered', 'webhook_failed')",
            name=op.f("ck_batch_operation_logs_operation_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["registration_batch_jobs.id"],
            name=op.f("fk_batch_operation_logs_batch_id_registration_batch_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["registration_jobs.id"],
            name=op.f("fk_batch_operation_logs_job_id_registration_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_batch_operation_logs_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_operation_logs")),
    )
    with op.batch_alter_table("batch_operation_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_batch_operation_logs_batch_created", ["batch_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_batch_operation_logs_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "registration_job_steps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("step_key", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("result_data", JSON_TYPE, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_details", JSON_TYPE, nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("blocked_by_step", sa.Integer(), nullable=True),
        sa.Column("carried_over", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'retrying', 'completed', 'failed', 'skipped', 'cancelled')",
            name=op.f("ck_registration_job_steps_status_valid"),
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_registration_job_steps_attempts_non_negative")
        ),
        sa.CheckConstraint(
            "blocked_by_step IS NULL OR blocked_by_step BETWEEN 1 AND 12",
            name=op.f("ck_registration_job_steps_blocked_by_step_range"),
        ),
        sa.CheckConstraint(
            "step_number BETWEEN 1 AND 12", name=op.f("ck_registration_job_steps_step_number_range")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["registration_jobs.id"],
            name=op.f("fk_registration_job_steps_job_id_registration_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_registration_job_steps_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registration_job_steps")),
        sa.UniqueConstraint("job_id", "step_number", name="uq_registration_job_steps_job_step"),
    )
    with op.batch_alter_table("registration_job_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registration_job_steps_organisation_id"),
            ["organisation_id"],
            unique=False,
        )
        batch_op.create_index("ix_registration_job_steps_status", ["status"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(APPEND_ONLY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS batch_operation_logs_no_update ON batch_operation_logs")
        op.execute("DROP FUNCTION IF EXISTS batch_operation_logs_append_only()")
    for table in (
        "registration_job_steps",
        "batch_operation_logs",
        "registration_jobs",
        "restaurants",
        "registration_batch_jobs",
        "api_keys",
        "organisations",
    ):
        op.drop_table(table)
