"""Statuses are enum members from the row to the read models, and the same strings in JSON."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep
from regbatch.statuses import BatchStatus, ExecutionMode, JobStatus, StepStatus
from tests.factories import make_restaurants


def test_rows_and_views_hold_enum_members_and_json_holds_the_strings(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 1)
        batch_id = batches.create_batch(
            session, organisation_id=org_id, name="typed", restaurant_ids=ids
        ).id
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        assert type(batch.status) is BatchStatus and batch.status is BatchStatus.DRAFT
        assert type(batch.execution_mode) is ExecutionMode
        assert batch.requested_action is None
        job_status = session.scalar(select(Job.status).where(Job.batch_id == batch_id))
        assert type(job_status) is JobStatus
        step_statuses = set(session.scalars(select(JobStep.status)))
        assert {type(s) for s in step_statuses} == {StepStatus}
        detail = batches.batch_detail(session, batch_id)
    assert type(detail.status) is BatchStatus
    assert {type(j.status) for j in detail.jobs} == {JobStatus}
    assert {type(s.status) for j in detail.jobs for s in j.steps} == {StepStatus}
    as_json = json.loads(detail.model_dump_json())
    assert as_json["status"] == "draft" and as_json["execution_mode"] == "sequential"
    assert {s["status"] for j in as_json["jobs"] for s in j["steps"]} == {"pending"}
    assert f"{batch.status!r}" == "'draft'"  # messages quote the status, not the enum
