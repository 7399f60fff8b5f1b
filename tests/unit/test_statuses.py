"""Status transitions are data, and one function enforces them."""

import pytest

from regbatch.errors import InvalidTransitionError
from regbatch.statuses import (
    TRANSITIONS,
    BatchStatus,
    JobStatus,
    StepStatus,
    allowed_from,
    can_transition,
    check_transition,
)


@pytest.mark.parametrize(
    ("level", "current", "target", "allowed"),
    [
        ("batch", "draft", "in_progress", True),
        ("batch", "draft", "pending", True),
        ("batch", "in_progress", "paused", True),
        ("batch", "paused", "in_progress", True),
        ("batch", "paused", "cancelled", True),
        ("batch", "in_progress", "completed", True),
        ("batch", "completed", "in_progress", False),
        ("batch", "cancelled", "pending", False),
        ("batch", "failed", "paused", False),
        ("batch", "draft", "completed", False),
        ("job", "pending", "in_progress", True),
        ("job", "in_progress", "completed", True),
        ("job", "failed", "in_progress", True),
        ("job", "completed", "failed", False),
        ("job", "cancelled", "in_progress", False),
        ("step", "pending", "in_progress", True),
        ("step", "in_progress", "retrying", True),
        ("step", "retrying", "in_progress", True),
        ("step", "in_progress", "completed", True),
        ("step", "failed", "pending", True),
        ("step", "completed", "in_progress", False),
        ("step", "completed", "pending", False),
        ("step", "pending", "completed", False),
    ],
)
def test_transition_table(level: str, current: str, target: str, allowed: bool) -> None:
    assert can_transition(level, current, target) is allowed


def test_every_status_has_a_row_and_only_known_targets() -> None:
    for level, enum in (("batch", BatchStatus), ("job", JobStatus), ("step", StepStatus)):
        assert set(TRANSITIONS[level]) == set(enum)
        for targets in TRANSITIONS[level].values():
            assert targets <= set(enum)


def test_finished_states_are_terminal_for_batches() -> None:
    for status in ("completed", "failed", "cancelled"):
        assert TRANSITIONS["batch"][status] == frozenset()


def test_check_transition_names_the_statuses() -> None:
    with pytest.raises(
        InvalidTransitionError, match="batch b1 is 'completed' and cannot become 'in_progress'"
    ):
        check_transition("batch", "completed", "in_progress", "b1")


def test_unknown_status_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown 'job' status 'done'"):
        can_transition("job", "done", "failed")


@pytest.mark.parametrize("level", ["batch", "job", "step"])
def test_allowed_from_is_the_transition_table_read_backwards(level: str) -> None:
    statuses = TRANSITIONS[level]
    for target in statuses:
        expected = {current for current in statuses if can_transition(level, current, target)}
        assert allowed_from(level, target) == expected


def test_allowed_from_names_unknown_levels_and_statuses() -> None:
    with pytest.raises(ValueError, match="unknown level 'run'"):
        allowed_from("run", "pending")
    with pytest.raises(ValueError, match="unknown 'step' status 'paused'"):
        allowed_from("step", "paused")


def test_an_undone_start_returns_the_batch_to_what_it_was() -> None:
    # services/starts.py: the submission to Prefect failed, so nothing ran the pending batch.
    assert allowed_from("batch", BatchStatus.DRAFT) == {BatchStatus.PENDING}
    assert BatchStatus.PENDING in allowed_from("batch", BatchStatus.PAUSED)


def test_transition_errors_quote_the_statuses_not_the_enums() -> None:
    with pytest.raises(InvalidTransitionError, match="is 'completed' and cannot become 'pending'"):
        check_transition("step", StepStatus.COMPLETED, StepStatus.PENDING, "s1")
