"""The append-only operation log: what happened to a batch, and who did it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.db.models import OperationLog


def append_log(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    batch_id: uuid.UUID,
    operation: Operation,
    actor: str,
    details: dict[str, Any] | None = None,
    job_id: uuid.UUID | None = None,
) -> OperationLog:
    """Add one entry to the log (flushed with the caller's transaction)."""
    entry = OperationLog(
        organisation_id=organisation_id,
        batch_id=batch_id,
        job_id=job_id,
        operation=Operation(operation),
        actor=actor,
        details=details or {},
    )
    session.add(entry)
    return entry


def read_log(session: Session, batch_id: uuid.UUID) -> list[OperationLog]:
    """A batch's log entries, oldest first."""
    query = select(OperationLog).where(OperationLog.batch_id == batch_id)
    return list(session.scalars(query.order_by(OperationLog.id)))
