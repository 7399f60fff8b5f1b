"""The batch run's artifacts: readable keys, numbers in the descriptions, one card per kind, and
no write that would not change what a card shows (Prefect's artifact API replaced by a recorder)."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from regbatch.statuses import BatchStatus
from regbatch.tasks import artifacts
from regbatch.tasks.artifacts import ProgressReporter, artifact_key, table_text
from regbatch.views import BatchDetail
from tests.unit.test_reporting import seed_example

PREFECT_KEY = re.compile(r"^[a-z0-9-]+$")
BATCH = uuid.UUID("7f3c9a2b-0000-4000-8000-000000000001")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Auckland Q4", "batch-auckland-q4-7f3c9a2b-progress"),
        ("Single: Café Ünïcode / 50% off!!", "batch-single-caf-n-code-50-off-7f3c9a2b-progress"),
        ("***", "batch-7f3c9a2b-progress"),
        ("x" * 80, f"batch-{'x' * 40}-7f3c9a2b-progress"),
    ],
)
def test_keys_are_readable_and_valid_for_prefect(name: str, key: str) -> None:
    assert artifact_key(BATCH, name, "progress") == key
    assert PREFECT_KEY.match(key)


def test_two_batches_of_the_same_name_have_their_own_keys() -> None:
    other = uuid.UUID("0a1b2c3d-0000-4000-8000-000000000002")
    assert artifact_key(BATCH, "Q4", "summary") != artifact_key(other, "Q4", "summary")


class Recorder:
    """Stands in for Prefect's artifact API and the ledger the reporter reads."""

    def __init__(self, detail: BatchDetail) -> None:
        self.detail = detail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def create(self, kind: str, **fields: Any) -> uuid.UUID:
        self.calls.append((f"create-{kind}", fields))
        return uuid.uuid4()

    async def update_progress(self, artifact_id: uuid.UUID, **fields: Any) -> uuid.UUID:
        self.calls.append(("update-progress", fields))
        return artifact_id

    async def update_table(self, artifact_id: uuid.UUID, rows: Any, description: str) -> None:
        self.calls.append(("update-table", {"description": description}))

    async def batch_report(self, batch_id: uuid.UUID) -> BatchDetail:
        return self.detail

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture()
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    detail = seed_example().model_copy(
        update={"status": BatchStatus.IN_PROGRESS, "completed": 0, "failed": 0}
    )
    rec = Recorder(detail)

    async def create_progress(**fields: Any) -> uuid.UUID:
        return await rec.create("progress", **fields)

    async def create_table(**fields: Any) -> uuid.UUID:
        return await rec.create("table", **fields)

    async def create_markdown(**fields: Any) -> uuid.UUID:
        return await rec.create("markdown", **fields)

    monkeypatch.setattr(artifacts, "acreate_progress_artifact", create_progress)
    monkeypatch.setattr(artifacts, "acreate_table_artifact", create_table)
    monkeypatch.setattr(artifacts, "acreate_markdown_artifact", create_markdown)
    monkeypatch.setattr(artifacts, "aupdate_progress_artifact", rec.update_progress)
    monkeypatch.setattr(ProgressReporter, "_patch_table", staticmethod(rec.update_table))
    monkeypatch.setattr(artifacts, "ledger", lambda: rec)
    return rec


def test_one_card_per_kind_updated_in_place_and_never_rewritten_unchanged(
    recorder: Recorder,
) -> None:
    reporter = ProgressReporter(BATCH, "Auckland Q4", 3, progress_interval_s=0)
    reporter.table_interval_s = 0  # no throttling here: every change is written

    async def scenario() -> None:
        await reporter.start(0)
        await reporter.job_finished(0)  # nothing changed: no write
        recorder.detail = recorder.detail.model_copy(update={"completed": 1})
        await reporter.job_finished(1)
        await reporter.job_finished(1)  # same again: no write
        final = recorder.detail.model_copy(
            update={"status": BatchStatus.COMPLETED, "completed": 2, "failed": 1}
        )
        await reporter.finish(final)

    asyncio.run(scenario())
    assert recorder.names() == [
        "create-progress",
        "create-table",
        "update-progress",
        "update-table",
        "update-progress",
        "update-table",
        "create-markdown",
    ]
    creates = [fields for name, fields in recorder.calls if name.startswith("create")]
    assert [c["key"] for c in creates] == [
        "batch-auckland-q4-7f3c9a2b-progress",
        "batch-auckland-q4-7f3c9a2b-restaurants",
        "batch-auckland-q4-7f3c9a2b-summary",
    ]
    descriptions = [fields["description"] for _, fields in recorder.calls]
    assert descriptions == [
        "0 of 3 restaurants finished",
        "0 of 3 restaurants finished: 0 completed, 0 failed",
        "1 of 3 restaurants finished",
        "1 of 3 restaurants finished: 1 completed, 0 failed",
        "3 of 3 restaurants finished",
        "3 of 3 restaurants finished: 2 completed, 1 failed",
        "completed: 2 of 3 restaurants registered, 1 failed",
    ]


def test_the_table_description_counts_cancelled_restaurants() -> None:
    detail = seed_example().model_copy(update={"completed": 1, "failed": 1, "cancelled": 1})
    assert table_text(detail) == ("3 of 3 restaurants finished: 1 completed, 1 failed, 1 cancelled")


def test_a_capped_table_says_so_and_where_every_restaurant_is() -> None:
    from regbatch.reporting import TABLE_ROWS_MAX

    detail = seed_example()
    big = detail.model_copy(update={"jobs": detail.jobs * TABLE_ROWS_MAX, "total": 3 * 2000})
    text = table_text(big)
    assert f"the table shows {TABLE_ROWS_MAX:,} of them, failed first" in text
    assert f"regbatch batch show {detail.id} --all" in text
    assert "the table shows" not in table_text(detail)
