"""The step a restaurant is at: running, else waiting to start, else the failed one."""

from __future__ import annotations

import pytest

from regbatch.errors import InvalidTransitionError
from regbatch.statuses import StepStatus, check_transition
from regbatch.steps import current_step

P, R, Y, C, F, S, X = (
    StepStatus.PENDING,
    StepStatus.IN_PROGRESS,
    StepStatus.RETRYING,
    StepStatus.COMPLETED,
    StepStatus.FAILED,
    StepStatus.SKIPPED,
    StepStatus.CANCELLED,
)


def statuses(**changed: StepStatus) -> dict[int, StepStatus]:
    """Twelve pending steps, with `s<N>=status` changes."""
    base = dict.fromkeys(range(1, 13), P)
    base.update({int(key[1:]): value for key, value in changed.items()})
    return base


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (statuses(), 1),  # nothing started: waits to start account registration
        # the bug: image upload had finished, the restaurant waits for its account turn
        (statuses(s2=C, s3=C, s4=C), 1),
        (statuses(s2=R, s4=Y), 2),  # running (retrying counts) comes first
        (statuses(s1=C, s2=C, s3=C, s4=C, s5=R), 5),
        # 5 done: 6, 7, 8 can start; the first of them
        (statuses(s1=C, s2=C, s3=S, s4=S, s5=C), 6),
        # 9 waits for 4 (soft) and 5; 11 waits for 9
        (statuses(s1=C, s2=C, s3=C, s4=R, s5=C, s6=C, s7=C, s8=C, s10=C), 4),
        (statuses(s1=F, **{f"s{n}": S for n in (5, 6, 7, 8, 9, 10, 11, 12)}, s2=C, s3=C, s4=C), 1),
        (dict.fromkeys(range(1, 13), C), None),
        (dict.fromkeys(range(1, 13), X), None),
    ],
)
def test_current_step(steps: dict[int, StepStatus], expected: int | None) -> None:
    assert current_step(steps) == expected


def test_transition_errors_name_the_subject_once() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        check_transition("step", C, R, "step account_registration")
    assert str(caught.value).startswith(
        "step account_registration is 'completed' and cannot become 'in_progress'"
    )
