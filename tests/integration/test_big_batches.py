"""A big batch is readable at once: its statistics are fresh when it is created, and a page of
its jobs comes from the batch/position index instead of a sort of every job."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from regbatch.db import batches
from regbatch.db.engine import session_scope
from tests.factories import make_restaurants


def test_a_big_batch_is_analyzed_and_paged_from_its_index(org_id: uuid.UUID) -> None:
    n = batches.ANALYZE_FROM_JOBS + 20
    with session_scope() as session:
        ids = make_restaurants(session, org_id, n)
        batch = batches.create_batch(
            session, organisation_id=org_id, name="big", restaurant_ids=ids
        )
    with session_scope() as session:
        counted = session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = 'registration_jobs'::regclass")
        ).scalar_one()
        assert counted >= n  # the planner knows the rows this batch added
        plan = session.execute(
            text(
                "EXPLAIN (FORMAT JSON) SELECT * FROM registration_jobs WHERE batch_id = :b "
                "AND position > -1 ORDER BY position LIMIT 101"
            ),
            {"b": batch.id},
        ).scalar_one()
    assert "ix_registration_jobs_batch_position" in json.dumps(plan)
    assert '"Sort"' not in json.dumps(plan)
