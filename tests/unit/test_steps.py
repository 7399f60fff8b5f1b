"""The step graph: twelve steps, dependencies that exist, no cycles, the documented policies."""

import pytest

from regbatch.steps import (
    BY_KEY,
    STEPS,
    RetryPolicy,
    StepKey,
    critical_path_length,
    dependents,
    step,
)


def test_twelve_steps_numbered_in_order() -> None:
    assert [s.number for s in STEPS] == list(range(1, 13))
    assert len({s.key for s in STEPS}) == 12
    assert set(BY_KEY) == set(StepKey)


def test_every_dependency_exists_and_comes_earlier() -> None:
    # Earlier in STEPS means STEPS is a topological order, hence the graph has no cycle.
    seen: set[StepKey] = set()
    for spec in STEPS:
        for dep in spec.prerequisites:
            assert dep in BY_KEY
            assert dep in seen, f"{spec.key} needs {dep}, which comes later"
        seen.add(spec.key)


@pytest.mark.parametrize(
    ("key", "deps"),
    [
        ("account_registration", ()),
        ("restaurant_registration", ("account_registration",)),
        ("website_configuration", ("code_generation", "restaurant_registration")),
        ("menu_import", ("restaurant_registration", "image_upload")),
        ("onboarding_sync", ("onboarding_user", "restaurant_registration")),
        ("option_sets", ("menu_import",)),
        ("item_tags", ("menu_import",)),
    ],
)
def test_dependencies_follow_the_domain_table(key: str, deps: tuple[str, ...]) -> None:
    assert set(step(key).prerequisites) == set(deps)


def test_image_upload_is_a_soft_dependency_of_menu_import() -> None:
    spec = step("menu_import")
    assert StepKey.IMAGE_UPLOAD in spec.waits_for
    assert StepKey.IMAGE_UPLOAD not in spec.depends_on


@pytest.mark.parametrize(
    ("key", "minutes"),
    [
        ("account_registration", 2),
        ("code_generation", 2),
        ("onboarding_user", 2),
        ("image_upload", 10),
        ("restaurant_registration", 3),
        ("website_configuration", 4),
        ("services_configuration", 3),
        ("payment_configuration", 3),
        ("menu_import", 2),
        ("onboarding_sync", 2),
        ("option_sets", 60),
        ("item_tags", 60),
    ],
)
def test_timeouts_follow_real_durations(key: str, minutes: int) -> None:
    assert step(key).timeout_s == minutes * 60


def test_default_retry_policy_is_three_retries_2_4_8() -> None:
    policy = RetryPolicy()
    assert all(s.retry == policy for s in STEPS)
    assert [policy.delay_before(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]


def test_blocking_steps_are_account_and_restaurant_registration() -> None:
    assert {s.key for s in STEPS if s.blocking} == {
        "account_registration",
        "restaurant_registration",
    }


def test_account_failure_blocks_everything_but_the_independent_first_steps() -> None:
    assert dependents(StepKey.ACCOUNT_REGISTRATION) == set(StepKey) - {
        StepKey.ACCOUNT_REGISTRATION,
        StepKey.CODE_GENERATION,
        StepKey.ONBOARDING_USER,
        StepKey.IMAGE_UPLOAD,
    }


def test_critical_path_is_four_steps_deep() -> None:
    assert critical_path_length() == 4


def test_labels_name_number_and_key() -> None:
    assert step("restaurant_registration").label == "05-restaurant_registration"


def test_unknown_step_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown step 'menu'; steps are account_registration"):
        step("menu")
