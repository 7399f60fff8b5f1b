"""A cancel of a batch's flow run in Prefect (UI or API) is a cancel of the batch."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from regbatch.db import lifecycle
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch
from regbatch.statuses import BATCH_FINISHED


def cancel_from_orchestrator(flow_run_id: uuid.UUID, actor: str) -> uuid.UUID | None:
    """Cancel the batch whose flow run Prefect cancelled, and say which; None when no unfinished
    batch has that run.

    Whoever runs it is fenced off at once (its lease ends); what already finished stays.
    """
    with session_scope() as session:
        batch_id = session.scalar(
            select(Batch.id).where(
                Batch.flow_run_id == flow_run_id, Batch.status.not_in(list(BATCH_FINISHED))
            )
        )
        if batch_id is None:
            return None
        lifecycle.cancel_from_orchestrator(session, batch_id, actor)
        return batch_id
