"""The vocabulary of the append-only operation log: what happened, and who did it."""

from __future__ import annotations

from enum import StrEnum


class Operation(StrEnum):
    BATCH_CREATED = "batch_created"
    BATCH_QUEUED = "batch_queued"
    BATCH_STARTED = "batch_started"
    BATCH_PAUSE_REQUESTED = "batch_pause_requested"
    BATCH_PAUSED = "batch_paused"
    BATCH_RESUMED = "batch_resumed"
    BATCH_CANCEL_REQUESTED = "batch_cancel_requested"
    BATCH_CANCELLED = "batch_cancelled"
    BATCH_COMPLETED = "batch_completed"
    BATCH_FAILED = "batch_failed"
    BATCH_RELEASED = "batch_released"
    LEASE_TAKEN_OVER = "lease_taken_over"
    JOB_STARTED = "job_started"
    JOB_COMPLETED = "job_completed"
    JOB_FAILED = "job_failed"
    JOB_CANCELLED = "job_cancelled"
    JOB_PAUSED = "job_paused"
    JOB_REQUEUED = "job_requeued"
    STEP_RETRIED = "step_retried"
    STEP_FAILED = "step_failed"
    BREAKER_TRIPPED = "breaker_tripped"
    RETRY_BATCH_CREATED = "retry_batch_created"
    WEBHOOK_DELIVERED = "webhook_delivered"
    WEBHOOK_FAILED = "webhook_failed"


class ActorKind(StrEnum):
    USER = "user"
    SCHEDULE = "schedule"
    BREAKER = "breaker"
    SYSTEM = "system"
    API = "api"


def actor(kind: ActorKind | str, name: str = "") -> str:
    """An actor string as stored in the log: 'user:alice', 'breaker', 'api:rk_3f9c'."""
    kind = ActorKind(kind)
    return f"{kind}:{name}" if name else str(kind)
