"""The batch status rule (the seed's, with its gap filled) and the breaker's edges."""

import pytest

from regbatch.batch_rules import (
    BreakerPolicy,
    JobCounts,
    allowed_actions,
    breaker_reason,
    breaker_trips,
    current_status,
    final_status,
)
from regbatch.statuses import BatchStatus, RequestedAction


@pytest.mark.parametrize(
    ("completed", "failed", "expected"),
    [
        (2, 1, "completed"),  # the seed's own example: Auckland Q4, 2 of 3 succeeded
        (3, 0, "completed"),
        (0, 3, "failed"),  # all failed
        (1, 2, "failed"),  # more than 50 % failed
        (1, 1, "completed"),  # exactly 50 % is not more than 50 %
        (5, 5, "completed"),
        (4, 6, "failed"),
        (0, 1, "failed"),
        (1, 0, "completed"),
    ],
)
def test_final_status(completed: int, failed: int, expected: str) -> None:
    counts = JobCounts(total=completed + failed, completed=completed, failed=failed)
    assert final_status(counts) == expected


def test_skipped_jobs_count_as_successes() -> None:
    assert final_status(JobCounts(total=3, completed=1, skipped=1, failed=1)) == "completed"


def test_final_status_refuses_unfinished_batches() -> None:
    with pytest.raises(ValueError, match="1 of 3 jobs are unfinished"):
        final_status(JobCounts(total=3, completed=1, failed=1))


@pytest.mark.parametrize(
    ("counts", "flags", "expected"),
    [
        (JobCounts(total=3, completed=1), {}, "in_progress"),
        (JobCounts(total=3, completed=1), {"paused": True}, "paused"),
        (JobCounts(total=3, completed=1), {"cancelled": True}, "cancelled"),
        (JobCounts(total=3), {"started": False}, "pending"),
        (JobCounts(total=3, completed=2, failed=1), {"paused": True}, "completed"),
    ],
)
def test_current_status(counts: JobCounts, flags: dict[str, bool], expected: str) -> None:
    assert current_status(counts, **flags) == expected


@pytest.mark.parametrize(
    ("failed", "finished", "min_finished", "trips"),
    [
        (2, 3, 3, True),  # 67 % > 50 %, minimum reached
        (2, 2, 3, False),  # 100 % but only 2 finished of the 3 needed
        (3, 6, 3, False),  # exactly 50 % does not trip
        (4, 7, 3, True),  # 57 %
        (0, 0, 1, False),
        (1, 1, 1, True),
        (3, 10, 3, False),
    ],
)
def test_breaker_edges(failed: int, finished: int, min_finished: int, trips: bool) -> None:
    assert breaker_trips(failed, finished, BreakerPolicy(min_finished=min_finished)) is trips


def test_breaker_threshold_is_configurable() -> None:
    assert breaker_trips(3, 10, BreakerPolicy(threshold=0.25, min_finished=3))
    assert not breaker_trips(9, 10, BreakerPolicy(enabled=False))


def test_breaker_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="threshold 1.5 must be between 0 and 1"):
        BreakerPolicy(threshold=1.5)
    with pytest.raises(ValueError, match="min_finished 0 must be at least 1"):
        BreakerPolicy(min_finished=0)


def test_breaker_reason_names_the_counts() -> None:
    assert breaker_reason(2, 3, BreakerPolicy()).startswith(
        "breaker tripped: 2 of 3 finished restaurants failed (67% > 50%)"
    )


@pytest.mark.parametrize(
    ("status", "requested", "failed", "expected"),
    [
        ("draft", None, 0, ["start", "cancel"]),
        ("pending", None, 0, ["cancel"]),
        ("in_progress", None, 0, ["pause", "cancel"]),
        ("in_progress", "pause", 0, ["resume", "cancel"]),
        ("in_progress", "cancel", 0, []),
        ("paused", None, 0, ["resume", "cancel"]),
        ("paused", None, 2, ["resume", "cancel", "retry-failed"]),
        ("completed", None, 0, []),
        ("completed", None, 1, ["retry-failed"]),
        ("failed", None, 3, ["retry-failed"]),
        ("cancelled", None, 1, ["retry-failed"]),
    ],
)
def test_allowed_actions_follow_the_lifecycle_rules(
    status: str, requested: str | None, failed: int, expected: list[str]
) -> None:
    action = RequestedAction(requested) if requested else None
    assert allowed_actions(BatchStatus(status), action, failed) == expected
