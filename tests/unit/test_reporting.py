"""What people read about a batch: durations, the results table, the results summary."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from regbatch.reporting import (
    batch_duration,
    counts_text,
    duration_text,
    summary_markdown,
    table_rows,
)
from regbatch.statuses import BatchStatus, ExecutionMode, JobStatus, StepStatus
from regbatch.views import BatchDetail, JobView, StepView

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (59.6, "1m 00s"), (2843, "47m 23s"), (3720, "1h 02m"), (None, "")],
)
def test_duration_text(seconds, text) -> None:
    assert duration_text(seconds) == text


def step(number: int, key: str, status: str = "completed", error: str | None = None) -> StepView:
    return StepView(
        step_number=number,
        step_key=key,
        status=StepStatus(status),
        attempts=1,
        started_at=T0,
        completed_at=T0,
        duration_ms=10,
        result_data=None,
        error_message=error,
        error_details=None,
        skip_reason=None,
        blocked_by_step=None,
        carried_over=False,
    )


def job(name: str, status: str, steps: list[StepView]) -> JobView:
    return JobView(
        id=uuid.uuid4(),
        restaurant_id=uuid.uuid4(),
        restaurant_name=name,
        position=0,
        status=JobStatus(status),
        current_step=None,
        error_message=None,
        error_details=None,
        retry_of_job_id=None,
        started_at=T0,
        completed_at=T0 + timedelta(minutes=3),
        steps=steps,
    )


def seed_example() -> BatchDetail:
    """The seed's "Auckland Q4": Pizza Palace and Chicken Shop complete, Burger House fails."""
    jobs = [
        job("Pizza Palace", "completed", [step(1, "account_registration")]),
        job("Burger House", "failed", [step(9, "menu_import", "failed", "CSV rejected")]),
        job("Chicken Shop", "completed", [step(1, "account_registration")]),
    ]
    return BatchDetail(
        id=uuid.uuid4(),
        name="Auckland Q4",
        status=BatchStatus.COMPLETED,
        execution_mode=ExecutionMode.SEQUENTIAL,
        concurrency=1,
        total=3,
        completed=2,
        failed=1,
        cancelled=0,
        created_at=T0,
        started_at=T0,
        completed_at=T0 + timedelta(minutes=47, seconds=23),
        retry_of_batch_id=None,
        organisation_id=uuid.uuid4(),
        settings={},
        created_by=None,
        breaker_threshold=0.5,
        breaker_min_finished=3,
        requested_action=None,
        pause_reason=None,
        error_message=None,
        paused_at=None,
        cancelled_at=None,
        updated_at=T0,
        jobs=jobs,
    )


def test_summary_follows_the_seed() -> None:
    text = summary_markdown(seed_example())
    assert text.startswith('# Batch: "Auckland Q4"  ✓ Completed')
    assert "Duration: 47m 23s" in text
    assert "| Total | 3 |" in text
    assert "| Successful | 2 (67%) |" in text
    assert "| Failed | 1 (33%) |" in text
    assert "| Burger House | ✗ Failed (09-menu_import: CSV rejected) |" in text
    assert "| Pizza Palace | ✓ Complete |" in text


def test_table_has_a_row_per_restaurant_with_its_failure() -> None:
    rows = table_rows(seed_example())
    assert [r["restaurant"] for r in rows] == ["Pizza Palace", "Burger House", "Chicken Shop"]
    assert rows[1]["error"] == "09-menu_import: CSV rejected"
    assert rows[0]["duration"] == "3m 00s"


def test_one_clock_for_every_duration() -> None:
    detail = seed_example()
    assert batch_duration(detail) == 47 * 60 + 23
    paused_then_cancelled = detail.model_copy(
        update={
            "status": BatchStatus.CANCELLED,
            "completed_at": None,
            "paused_at": T0 + timedelta(seconds=10),
            "cancelled_at": T0 + timedelta(seconds=15),
        }
    )
    assert batch_duration(paused_then_cancelled) == 15  # not the stale pause
    running = detail.model_copy(update={"status": BatchStatus.IN_PROGRESS, "completed_at": None})
    assert batch_duration(running, now=T0 + timedelta(seconds=34)) == 34
    assert batch_duration(detail.model_copy(update={"started_at": None})) is None
    assert "Duration: 15s" in summary_markdown(paused_then_cancelled)


def test_counts_name_cancelled_and_skipped_restaurants() -> None:
    detail = seed_example()
    detail.jobs.append(job("Taco Truck", "cancelled", []))
    detail.jobs.append(job("Noodle Bar", "skipped", []))
    detail = detail.model_copy(update={"total": 5, "status": BatchStatus.CANCELLED})
    assert counts_text(detail) == "5/5 finished (2 ok, 1 failed, 1 cancelled, 1 skipped)"
    assert "| Skipped | 1 (20%) |" in summary_markdown(detail)


def test_long_failures_are_cut_between_words_in_the_summary() -> None:
    detail = seed_example()
    long_error = "the platform rejected the menu because " + "item price missing " * 30
    detail.jobs[1].steps[0].error_message = long_error
    row = next(line for line in summary_markdown(detail).splitlines() if "Burger" in line)
    cell = row.split("(09-menu_import: ", 1)[1]
    assert cell.endswith(" …) |") and len(cell) < 320
    words = cell.removesuffix(" …) |").split(" ")
    assert set(words[7:]) <= {"item", "price", "missing"}  # whole words only


def test_a_table_too_big_for_a_prefect_event_shows_the_failed_restaurants_first() -> None:
    from regbatch.reporting import TABLE_ROWS_MAX

    ok = job("Fine Diner", "completed", [step(1, "account_registration")])
    broken = job("Broken Grill", "failed", [step(9, "menu_import", "failed", "CSV rejected")])
    jobs = [ok] * TABLE_ROWS_MAX + [broken]
    detail = seed_example().model_copy(update={"jobs": jobs, "total": len(jobs)})
    rows = table_rows(detail)
    assert len(rows) == TABLE_ROWS_MAX
    assert rows[0]["restaurant"] == "Broken Grill" and rows[1]["restaurant"] == "Fine Diner"
    assert len(json.dumps(rows)) < 1_500_000  # Prefect's largest event
    small = table_rows(seed_example())  # under the cap: every restaurant, in the batch's order
    assert [r["restaurant"] for r in small] == ["Pizza Palace", "Burger House", "Chicken Shop"]
