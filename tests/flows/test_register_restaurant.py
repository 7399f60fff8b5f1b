"""One restaurant's twelve steps, for real: PostgreSQL, the sandbox over HTTP, Prefect running."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from regbatch.db import batches
from regbatch.db.engine import session_scope
from regbatch.db.oplog import read_log
from regbatch.flows.restaurant import register_restaurant
from regbatch.sandbox.control import SandboxControl
from regbatch.steps import STEPS
from tests.flows.conftest import lease_of, ledger_for, new_batch, run

pytestmark = pytest.mark.flow


def job_detail(batch_id: uuid.UUID):
    with session_scope() as session:
        return batches.batch_detail(session, batch_id).jobs[0]


def steps_of(batch_id: uuid.UUID) -> dict:
    return {s.step_key: s for s in job_detail(batch_id).steps}


def test_happy_path_runs_all_twelve_steps_once(org_id, sandbox: SandboxControl) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(org_id)
    state = run(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_completed(), state
    job = job_detail(batch_id)
    assert job.status == "completed" and job.error_message is None
    steps = {s.step_key: s for s in job.steps}
    assert {s.status for s in steps.values()} == {"completed"}
    assert all(s.attempts == 1 and s.duration_ms is not None for s in steps.values())
    # later steps used earlier steps' outputs: the website was configured on the registered
    # restaurant, and the menu import saw the CDN urls of the image upload
    registered = steps["restaurant_registration"].result_data
    assert registered["platform_restaurant_id"]
    assert registered["subdomain"] in steps["website_configuration"].result_data["website_url"]
    assert steps["option_sets"].result_data["option_set_ids"]
    entries = ledger_for(sandbox, restaurant_id)
    assert Counter(e["step"] for e in entries) == Counter(s.key.value for s in STEPS)
    assert not any(e["replay"] for e in entries)
    assert len({e["idempotency_key"] for e in entries}) == 12
    with session_scope() as session:
        from regbatch.db.models import Batch

        assert session.get(Batch, batch_id).completed_restaurants == 1  # type: ignore[union-attr]


def test_transient_faults_are_retried_with_attempts_on_the_step_row(org_id, sandbox) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(org_id)
    sandbox.set_faults(
        [{"restaurant": str(restaurant_id), "step": "menu_import", "kind": "transient", "times": 2}]
    )
    state = run(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_completed(), state
    menu = steps_of(batch_id)["menu_import"]
    assert (menu.status, menu.attempts) == ("completed", 3)
    with session_scope() as session:
        log = read_log(session, batch_id)
    retried = [e for e in log if e.operation == "step_retried"]
    assert [e.details["attempt"] for e in retried] == [1, 2]
    assert all("503" in e.details["error"] for e in retried)
    non_replays = [e for e in ledger_for(sandbox, restaurant_id) if not e["replay"]]
    assert Counter(e["step"] for e in non_replays)["menu_import"] == 1


@pytest.mark.parametrize("kind", ["permanent", "success_false"])
def test_a_permanent_failure_fails_at_once_without_retry(org_id, sandbox, kind: str) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(org_id)
    sandbox.set_faults([{"restaurant": str(restaurant_id), "step": "menu_import", "kind": kind}])
    state = run(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_failed()
    job = job_detail(batch_id)
    steps = {s.step_key: s for s in job.steps}
    menu = steps["menu_import"]
    assert (menu.status, menu.attempts) == ("failed", 1)
    assert menu.error_details["transient"] is False
    expected_code = "INJECTED_PERMANENT" if kind == "permanent" else "INJECTED_FAILURE"
    assert menu.error_details["code"] == expected_code
    assert job.status == "failed" and job.error_message.startswith("09-menu_import failed")
    # a menu import failure skips option sets and item tags, not the configuration steps
    for key in ("option_sets", "item_tags"):
        assert steps[key].status == "skipped"
        assert steps[key].skip_reason == "09-menu_import failed"
        assert steps[key].blocked_by_step == 9
    for key in (
        "website_configuration",
        "services_configuration",
        "payment_configuration",
        "onboarding_sync",
    ):
        assert steps[key].status == "completed", key


def test_already_existing_account_is_a_success(org_id, sandbox) -> None:
    first_batch, (first_job,), _ = new_batch(org_id)
    run(register_restaurant(first_job, lease_of(first_job), return_state=True))
    first_account = steps_of(first_batch)["account_registration"].result_data
    email = first_account["email"]
    # a second restaurant of the same owner: the platform already has the account
    batch_id, (job_id,), (restaurant_id,) = new_batch(
        org_id,
        settings={"onboarding": {"create_user": True, "sync": True}, "account": {"email": email}},
    )
    state = run(register_restaurant(job_id, lease_of(job_id), return_state=True))
    assert state.is_completed(), state
    account = steps_of(batch_id)["account_registration"]
    assert account.status == "completed"
    assert account.result_data["already_existed"] is True
    assert account.result_data["account_id"] == first_account["account_id"]
    entry = next(
        e for e in ledger_for(sandbox, restaurant_id) if e["step"] == "account_registration"
    )
    assert entry["replay"] is True


def test_account_failure_blocks_every_step_that_needs_it(org_id, sandbox) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(org_id)
    sandbox.set_faults(
        [{"restaurant": str(restaurant_id), "step": "account_registration", "kind": "permanent"}]
    )
    assert run(register_restaurant(job_id, lease_of(job_id), return_state=True)).is_failed()
    steps = steps_of(batch_id)
    assert steps["account_registration"].status == "failed"
    for key in ("code_generation", "onboarding_user", "image_upload"):
        assert steps[key].status == "completed", key  # independent: they still ran
    for spec in STEPS[4:]:
        row = steps[spec.key]
        assert row.status == "skipped", spec.key
        assert row.skip_reason.startswith("01-account_registration failed"), row.skip_reason
    called = {e["step"] for e in ledger_for(sandbox, restaurant_id)}
    assert called == {"code_generation", "onboarding_user", "image_upload"}


def test_steps_disabled_by_configuration_are_skipped_with_a_reason(org_id, sandbox) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(
        org_id,
        settings={"steps": {"payment_configuration": False}, "menu": {"create_item_tags": False}},
    )
    assert run(register_restaurant(job_id, lease_of(job_id), return_state=True)).is_completed()
    steps = steps_of(batch_id)
    assert steps["payment_configuration"].skip_reason == (
        "disabled by configuration (steps.payment_configuration is false)"
    )
    assert steps["item_tags"].skip_reason == (
        "item tags are not requested (menu.create_item_tags is false)"
    )
    assert steps["onboarding_user"].skip_reason == (
        "onboarding is not requested (onboarding.create_user is false)"
    )
    assert steps["onboarding_sync"].status == "skipped"
    called = {e["step"] for e in ledger_for(sandbox, restaurant_id)}
    assert not called & {"payment_configuration", "item_tags", "onboarding_user", "onboarding_sync"}


def test_running_a_failed_job_again_repeats_only_what_failed(org_id, sandbox) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(org_id)
    sandbox.set_faults(
        [{"restaurant": str(restaurant_id), "step": "menu_import", "kind": "permanent"}]
    )
    assert run(register_restaurant(job_id, lease_of(job_id), return_state=True)).is_failed()
    before = Counter(e["step"] for e in ledger_for(sandbox, restaurant_id))
    sandbox.clear_faults()
    assert run(register_restaurant(job_id, lease_of(job_id), return_state=True)).is_completed()
    after = Counter(e["step"] for e in ledger_for(sandbox, restaurant_id))
    assert after - before == Counter({"menu_import": 1, "option_sets": 1, "item_tags": 1})
    assert {s.status for s in steps_of(batch_id).values()} == {"completed"}
    assert job_detail(batch_id).status == "completed"


def test_platform_rate_limit_is_waited_out_not_failed(org_id, sandbox) -> None:
    sandbox.set_account_spacing(1.5)
    _, job_ids, restaurant_ids = new_batch(org_id, count=2, settings={})
    for job_id in job_ids:
        assert run(register_restaurant(job_id, lease_of(job_id), return_state=True)).is_completed()
    accounts = [
        e
        for e in sandbox.ledger()
        if e["step"] == "account_registration"
        and e["restaurant"] in {str(r) for r in restaurant_ids}
    ]
    assert len(accounts) == 2 and not any(e["replay"] for e in accounts)


def test_a_timed_out_call_is_retried_as_a_replay(org_id, sandbox) -> None:
    batch_id, (job_id,), (restaurant_id,) = new_batch(
        org_id, settings={"policies": {"restaurant_registration": {"timeout_s": 1.0}}}
    )
    sandbox.set_faults(
        [
            {
                "restaurant": str(restaurant_id),
                "step": "restaurant_registration",
                "kind": "timeout",
                "times": 1,
                "delay_s": 5,
            }
        ]
    )
    assert run(register_restaurant(job_id, lease_of(job_id), return_state=True)).is_completed()
    registration = steps_of(batch_id)["restaurant_registration"]
    assert registration.attempts == 2
    entries = [
        e for e in ledger_for(sandbox, restaurant_id) if e["step"] == "restaurant_registration"
    ]
    assert [e["replay"] for e in entries] == [False, True]
