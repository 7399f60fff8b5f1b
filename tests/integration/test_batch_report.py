"""The runner's report of a batch reads only the restaurants its Prefect table shows: past the
cap, the failed ones first, then the others in the batch's order, each with its steps."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.models import Job
from regbatch.reporting import summary_markdown, table_rows
from regbatch.statuses import JobStatus
from tests.factories import make_restaurants


def _batch_with_outcomes(org_id: uuid.UUID) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Eight restaurants; the 6th and 8th failed, the 3rd skipped. Returns the jobs in order."""
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 8)
        batch = batches.create_batch(
            session, organisation_id=org_id, name="report", restaurant_ids=ids
        )
        jobs = [job.id for job in session.scalars(batches.select_jobs(batch.id))]
        for index, status in ((5, JobStatus.FAILED), (7, JobStatus.FAILED), (2, "skipped")):
            session.execute(update(Job).where(Job.id == jobs[index]).values(status=status))
        return batch.id, jobs


def test_past_the_cap_the_report_holds_the_failed_first_then_the_batch_order(
    org_id: uuid.UUID,
) -> None:
    batch_id, jobs = _batch_with_outcomes(org_id)
    with session_scope() as session:
        report = batches.batch_report(session, batch_id, jobs_max=4)
    assert [j.id for j in report.jobs] == [jobs[5], jobs[7], jobs[0], jobs[1]]
    assert report.total == 8
    assert report.skipped == 1  # counted over the whole batch, shown or not
    assert all(len(j.steps) == 12 for j in report.jobs)
    assert all(s.result_data is None for j in report.jobs for s in j.steps)
    summary = summary_markdown(report)
    assert "| Skipped | 1 (12%) |" in summary
    assert f"The 4 shown of 8, failed first; every one: `regbatch batch show {batch_id} --all`" in (
        summary
    )
    assert [row["status"] for row in table_rows(report)] == [
        "failed",
        "failed",
        "pending",
        "pending",
    ]


def test_under_the_cap_the_report_holds_every_restaurant_in_the_batch_order(
    org_id: uuid.UUID,
) -> None:
    batch_id, jobs = _batch_with_outcomes(org_id)
    with session_scope() as session:
        report = batches.batch_report(session, batch_id, jobs_max=8)
        detail = batches.batch_detail(session, batch_id, with_results=False)
    assert [j.id for j in report.jobs] == jobs
    assert report.jobs == detail.jobs
    assert "shown of" not in summary_markdown(report)
