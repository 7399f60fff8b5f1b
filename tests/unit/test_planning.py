"""Planning: which steps run next, which are skipped and why, and what a re-run repeats."""

from regbatch.config import build_config
from regbatch.planning import Run, Skip, StepState, job_outcome, next_decisions, steps_to_rerun
from regbatch.statuses import StepStatus
from regbatch.steps import STEPS, StepKey
from tests.factories import sample_rows

K = StepKey
S = StepStatus


def config(**settings: object):
    return build_config(
        {**sample_rows()[0], "id": "r-1"},
        {"onboarding": {"create_user": True, "sync": True}, **settings},
    )


def states(**overrides: StepState) -> dict[str, StepState]:
    result: dict[str, StepState] = {spec.key: StepState(S.PENDING) for spec in STEPS}
    result.update({K(k): v for k, v in overrides.items()})
    return result


def done(result: dict | None = None) -> StepState:
    return StepState(S.COMPLETED, result or {"ok": True})


def test_a_fresh_job_starts_with_the_four_independent_steps() -> None:
    decisions = next_decisions(states(), config())
    assert decisions == [
        Run(K.ACCOUNT_REGISTRATION),
        Run(K.CODE_GENERATION),
        Run(K.ONBOARDING_USER),
        Run(K.IMAGE_UPLOAD),
    ]


def test_restaurant_registration_waits_for_the_account() -> None:
    current = states(account_registration=StepState(S.IN_PROGRESS))
    assert Run(K.RESTAURANT_REGISTRATION) not in next_decisions(current, config())
    current = states(account_registration=done())
    assert Run(K.RESTAURANT_REGISTRATION) in next_decisions(current, config())


def test_menu_import_waits_for_image_upload_but_runs_after_its_failure() -> None:
    base = {"account_registration": done(), "restaurant_registration": done()}
    running = states(**base, image_upload=StepState(S.IN_PROGRESS))
    assert all(d.key != K.MENU_IMPORT for d in next_decisions(running, config()))
    failed = states(**base, image_upload=StepState(S.FAILED))
    assert Run(K.MENU_IMPORT) in next_decisions(failed, config())


def test_a_failed_hard_dependency_skips_its_dependents_with_the_reason() -> None:
    current = states(account_registration=StepState(S.FAILED))
    decision = next(
        d for d in next_decisions(current, config()) if d.key == K.RESTAURANT_REGISTRATION
    )
    assert decision == Skip(
        K.RESTAURANT_REGISTRATION,
        "01-account_registration failed",
        blocked_by=K.ACCOUNT_REGISTRATION,
    )


def test_skips_propagate_naming_the_root_failure() -> None:
    current = states(
        account_registration=done(),
        restaurant_registration=done(),
        image_upload=done(),
        code_generation=done({"head_injection": "<x>"}),
        onboarding_user=done(),
        menu_import=StepState(S.FAILED),
    )
    decisions = {d.key: d for d in next_decisions(current, config())}
    assert decisions[K.OPTION_SETS] == Skip(
        K.OPTION_SETS, "09-menu_import failed", blocked_by=K.MENU_IMPORT
    )
    assert isinstance(decisions[K.WEBSITE_CONFIGURATION], Run)  # unaffected siblings run


def test_condition_and_flag_skips_carry_no_blame() -> None:
    cfg = config(
        steps={"payment_configuration": False}, onboarding={"create_user": False, "sync": False}
    )
    current = states(account_registration=done(), restaurant_registration=done())
    decisions = {d.key: d for d in next_decisions(states(), cfg) + next_decisions(current, cfg)}
    assert decisions[K.ONBOARDING_USER] == Skip(
        K.ONBOARDING_USER, "onboarding is not requested (onboarding.create_user is false)"
    )
    assert decisions[K.PAYMENT_CONFIGURATION] == Skip(
        K.PAYMENT_CONFIGURATION, "disabled by configuration (steps.payment_configuration is false)"
    )


def test_website_configuration_is_skipped_without_an_injection() -> None:
    current = states(
        account_registration=done(),
        restaurant_registration=done(),
        code_generation=done({"head_injection": "", "body_injection": ""}),
    )
    decision = next(
        d for d in next_decisions(current, config()) if d.key == K.WEBSITE_CONFIGURATION
    )
    assert decision == Skip(
        K.WEBSITE_CONFIGURATION, "code generation produced no injection to apply"
    )


def test_job_outcome() -> None:
    assert job_outcome(states()) is None
    all_done: dict[str, StepState] = {spec.key: done() for spec in STEPS}
    assert job_outcome(all_done) == "completed"
    assert job_outcome({**all_done, K.ITEM_TAGS: StepState(S.SKIPPED)}) == "completed"
    assert job_outcome({**all_done, K.ITEM_TAGS: StepState(S.FAILED)}) == "failed"
    assert job_outcome({**all_done, K.ITEM_TAGS: StepState(S.CANCELLED)}) == "cancelled"
    assert job_outcome({**all_done, K.ITEM_TAGS: StepState(S.RETRYING)}) is None


def test_rerun_takes_failed_steps_and_what_they_blocked_only() -> None:
    current: dict[str, StepState] = {spec.key: done() for spec in STEPS}
    current[K.MENU_IMPORT] = StepState(S.FAILED)
    current[K.OPTION_SETS] = StepState(S.SKIPPED, blocked_by=K.MENU_IMPORT)
    current[K.ITEM_TAGS] = StepState(S.SKIPPED, blocked_by=K.MENU_IMPORT)
    current[K.ONBOARDING_SYNC] = StepState(S.SKIPPED)  # skipped by config: stays
    current[K.PAYMENT_CONFIGURATION] = StepState(S.FAILED)
    assert steps_to_rerun(current) == {
        K.MENU_IMPORT,
        K.OPTION_SETS,
        K.ITEM_TAGS,
        K.PAYMENT_CONFIGURATION,
    }
