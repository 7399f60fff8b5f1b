"""Two more operation log entries: a batch queued on Prefect, a job paused mid-way.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BEFORE = (
    "batch_created",
    "batch_started",
    "batch_pause_requested",
    "batch_paused",
    "batch_resumed",
    "batch_cancel_requested",
    "batch_cancelled",
    "batch_completed",
    "batch_failed",
    "batch_released",
    "lease_taken_over",
    "job_started",
    "job_completed",
    "job_failed",
    "job_cancelled",
    "job_requeued",
    "step_retried",
    "step_failed",
    "breaker_tripped",
    "retry_batch_created",
    "webhook_delivered",
    "webhook_failed",
)
AFTER = (*BEFORE[:1], "batch_queued", *BEFORE[1:15], "job_paused", *BEFORE[15:])
NAME = "operation_valid"


def _set(values: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{v}'" for v in values)
    with op.batch_alter_table("batch_operation_logs") as batch:
        batch.drop_constraint(op.f(f"ck_batch_operation_logs_{NAME}"), type_="check")
        batch.create_check_constraint(NAME, f"operation IN ({listed})")


def upgrade() -> None:
    _set(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM batch_operation_logs WHERE operation IN ('batch_queued', 'job_paused')")
    _set(BEFORE)
