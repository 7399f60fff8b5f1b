"""What integration tests share about the database: the statements a block sends, and a batch
that a runner holds, on PostgreSQL or on an embedded SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from regbatch.db import batches, lifecycle
from regbatch.db.engine import get_engine, session_scope
from regbatch.db.models import Job
from regbatch.db.organisations import create_organisation
from regbatch.lease import Lease
from tests.factories import make_restaurants


@contextmanager
def sql_sent(url: str | None = None) -> Iterator[list[str]]:
    """The SQL statements this process sends to `url`'s engine (None: the session's
    PostgreSQL) inside the block, in order; the list fills while the block runs."""
    sent: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def running_batch(
    url: str | None, jobs: int, **options: Any
) -> tuple[uuid.UUID, list[uuid.UUID], Lease]:
    """A batch of `jobs` restaurants of a new organisation (`options` go to create_batch),
    begun by a runner: (its id, its jobs' ids in the batch's order, the runner's lease)."""
    with session_scope(url) as session:
        org = create_organisation(session, f"Running {uuid.uuid4().hex[:8]}").id
        ids = make_restaurants(session, org, jobs)
        batch = batches.create_batch(
            session, organisation_id=org, name="running", restaurant_ids=ids, **options
        )
        query = select(Job.id).where(Job.batch_id == batch.id).order_by(Job.position)
        job_ids = list(session.scalars(query))
    with session_scope(url) as session:
        lease = lifecycle.begin_run(session, batch.id, "tests", lease_seconds=60).lease
    assert lease is not None
    return batch.id, job_ids, lease
