"""Names of flow runs: the batch's and each restaurant's, read once and kept.

Prefect names a run with a synchronous callable, so a name is looked up at most once per
process: the dispatcher notes the restaurant names it already read.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from regbatch.db.batches import get_batch
from regbatch.db.engine import session_scope
from regbatch.db.models import Job, Restaurant

_JOB_NAMES: dict[uuid.UUID, str] = {}
_JOB_NAMES_SIZE = 4096


def note_job_name(job_id: uuid.UUID, restaurant_name: str) -> None:
    """Remember a restaurant's name for its job's flow run (bounded)."""
    if len(_JOB_NAMES) >= _JOB_NAMES_SIZE:
        _JOB_NAMES.pop(next(iter(_JOB_NAMES)))
    _JOB_NAMES[job_id] = restaurant_name


def restaurant_name_for_job(job_id: uuid.UUID) -> str:
    """The restaurant's name (names its flow run; read from the database unless noted)."""
    known = _JOB_NAMES.get(job_id)
    if known is not None:
        return known
    with session_scope() as session:
        name = session.scalar(
            select(Restaurant.name)
            .join(Job, Job.restaurant_id == Restaurant.id)
            .where(Job.id == job_id)
        )
    return name or f"job {job_id}"


def batch_name(batch_id: uuid.UUID) -> str:
    """The batch's name (names its flow run)."""
    with session_scope() as session:
        return get_batch(session, batch_id).name
