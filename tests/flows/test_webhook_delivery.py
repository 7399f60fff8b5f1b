"""Webhook deliveries as Prefect task runs, to real HTTP receivers on 127.0.0.1: signatures,
Prefect's retries of transient failures only, the operation log, deliveries at once, the
`regbatch webhook test` command, a cancel announced, and the batch flow announcing its end."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from regbatch.api import lifecycle
from regbatch.api.running import run_batch
from regbatch.db.batches import create_batch
from regbatch.db.engine import session_scope
from regbatch.services import webhooks as service
from regbatch.tasks import webhooks as webhook_tasks
from regbatch.tasks.webhooks import notify_batch_outcome
from regbatch.webhooks import verify
from tests.cli import cli, cli_json
from tests.conftest import free_port
from tests.factories import make_restaurants
from tests.flows.conftest import new_batch
from tests.flows.prefect_records import finished_task_runs
from tests.integration.test_webhooks import (
    DELAY,
    Receiver,
    started_receivers,
    stopped_batch,
    webhook_log,
)
from tests.settings_env import settings_env

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture()
def receiver() -> Iterator[Callable[..., Receiver]]:
    yield from started_receivers()


def test_a_delivery_is_signed_with_the_secret_and_logged_without_it(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    created = service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id, "failed")

    [result] = webhook_tasks.deliver_batch_event(batch_id, base_delay_s=DELAY)

    assert result.delivered and result.attempts == 1 and result.status_code == 200
    assert result.url == hook.url.split("?")[0]
    [(headers, body)] = hook.requests
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "regbatch-webhooks/1"
    assert headers["X-Regbatch-Event"] == "batch.failed"
    assert headers["X-Regbatch-Delivery"] == str(result.delivery_id)
    assert verify(created.secret, headers["X-Regbatch-Signature"], body)
    assert not verify(
        created.secret, headers["X-Regbatch-Signature"], body.replace(b"failed", b"fine")
    )
    payload = json.loads(body)
    assert body == json.dumps(payload, separators=(",", ":")).encode()  # compact, as signed
    assert payload["event"] == "batch.failed" and payload["batch"]["id"] == str(batch_id)
    assert payload["batch"]["counts"] == {"total": 2, "completed": 1, "failed": 1, "cancelled": 0}
    [failure] = payload["failed_restaurants"]
    assert failure["step"] == "09-menu_import"
    assert failure["error"] == "menu CSV rejected: row 3 has no price"

    [entry] = webhook_log(batch_id)
    assert entry.operation == "webhook_delivered" and entry.actor == "system"
    assert entry.details == {
        "subscription_id": str(created.id),
        "url": hook.url.split("?")[0],
        "event": "batch.failed",
        "delivery_id": str(result.delivery_id),
        "attempt": 1,
        "max_attempts": 4,
        "status_code": 200,
        "error": None,
    }
    signature = headers["X-Regbatch-Signature"].split("v1=")[1]
    logged = json.dumps(entry.details)
    assert created.secret not in logged and signature not in logged and "t0p" not in logged


def test_503_twice_then_200_is_delivered_on_the_third_attempt_by_prefect_retries(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver([503, 503])
    created = service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id, "completed")

    [result] = webhook_tasks.deliver_batch_event(batch_id, base_delay_s=DELAY)

    assert result.delivered and result.attempts == 3 and result.event == "batch.completed"
    assert len(hook.requests) == 3
    assert {headers["X-Regbatch-Delivery"] for headers, _ in hook.requests} == {
        str(result.delivery_id)
    }  # one delivery id across its attempts, so receivers can drop duplicates
    assert all(verify(created.secret, h["X-Regbatch-Signature"], b) for h, b in hook.requests)
    log = webhook_log(batch_id)
    assert [e.operation for e in log] == ["webhook_failed", "webhook_failed", "webhook_delivered"]
    assert [e.details["attempt"] for e in log] == [1, 2, 3]
    assert [e.details["status_code"] for e in log] == [503, 503, 200]
    assert log[0].details["error"] == "HTTP 503 Service Unavailable"
    # the attempts were one Prefect task run, retried by Prefect
    [task_run] = finished_task_runs(1, name=f"webhook batch.completed: {result.url}")
    assert task_run.run_count == 3 and task_run.state is not None
    assert task_run.state.is_completed()


def test_a_permanent_4xx_is_not_retried(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver([404])
    service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id, "failed")

    [result] = webhook_tasks.deliver_batch_event(batch_id, base_delay_s=DELAY)

    assert not result.delivered and result.attempts == 1 and result.status_code == 404
    assert result.error == "HTTP 404 Not Found"
    assert len(hook.requests) == 1
    [entry] = webhook_log(batch_id)
    assert entry.operation == "webhook_failed"
    assert (entry.details["attempt"], entry.details["max_attempts"]) == (1, 4)


def test_a_receiver_that_is_down_is_retried_logged_as_failed_and_nothing_raises(
    org_id: uuid.UUID,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks"
    service.create_subscription(org_id, url=url, events=["batch.paused"])
    batch_id = stopped_batch(org_id, "paused")

    [result] = webhook_tasks.deliver_batch_event(batch_id, attempts=3, base_delay_s=DELAY)

    assert not result.delivered and result.attempts == 3 and result.status_code is None
    assert result.error is not None and result.error.startswith("connection failed")
    log = webhook_log(batch_id)
    assert [e.operation for e in log] == ["webhook_failed"] * 3
    assert all(e.details["event"] == "batch.paused" for e in log)


def test_redirects_and_slow_receivers_are_failures(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    moved = receiver([302])
    slow = receiver(delay_s=0.5)
    service.create_subscription(org_id, url=moved.url)
    service.create_subscription(org_id, url=slow.url)
    batch_id = stopped_batch(org_id, "failed")

    results = webhook_tasks.deliver_batch_event(
        batch_id, attempts=1, timeout_s=0.2, base_delay_s=DELAY
    )

    by_url = {r.url: r for r in results}
    redirected, timed_out = by_url[moved.url.split("?")[0]], by_url[slow.url.split("?")[0]]
    assert not redirected.delivered and redirected.status_code == 302
    assert moved.methods == ["POST"]  # not re-sent as a bodiless GET to the new location
    assert not timed_out.delivered and timed_out.error == "timed out after 0.2 s"


def test_the_retry_policy_comes_from_the_environment_when_not_given(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver([503, 503, 503])
    service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id)
    quick = {"REGBATCH_WEBHOOK_ATTEMPTS": "2", "REGBATCH_WEBHOOK_BASE_DELAY_SECONDS": "0.01"}
    with settings_env(quick):
        [result] = webhook_tasks.deliver_batch_event(batch_id)
    assert not result.delivered and result.attempts == 2 and len(hook.requests) == 2


def test_the_flow_entry_delivers_to_every_subscriber_at_once_and_never_raises(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    # Each receiver answers only once both requests arrived: one after the other, they would not.
    both_arrived = threading.Barrier(2, timeout=5)
    first, second = (
        receiver(before_answer=both_arrived.wait),
        receiver(before_answer=both_arrived.wait),
    )
    service.create_subscription(org_id, url=first.url)
    service.create_subscription(org_id, url=second.url)
    batch_id = stopped_batch(org_id, "cancelled")
    with settings_env({"REGBATCH_WEBHOOK_BASE_DELAY_SECONDS": str(DELAY)}):
        results = asyncio.run(notify_batch_outcome(batch_id))
        nobody = asyncio.run(notify_batch_outcome(uuid.uuid4()))  # no such batch: logged
    assert [(r.event, r.delivered, r.attempts) for r in results] == [
        ("batch.cancelled", True, 1)
    ] * 2
    assert not both_arrived.broken
    assert nobody == []


def test_webhook_test_command(org_id: uuid.UUID, receiver: Callable[..., Receiver]) -> None:
    org = str(org_id)
    hook = receiver([500])
    created = cli_json("webhook", "create", "--org", org, "--url", hook.url)
    batch_id = stopped_batch(org_id, "failed")
    first = cli(
        "webhook", "test", created["id"], "--org", org, "--batch", str(batch_id),
        "--attempts", "1", "--json", check=False,
    )  # fmt: skip
    assert first.returncode == 1
    assert json.loads(first.stdout)["status_code"] == 500
    tested = cli_json("webhook", "test", created["id"], "--org", org, "--batch", str(batch_id))
    assert tested["delivered"] and tested["event"] == "batch.failed" and tested["attempts"] == 1


def test_a_batch_cancelled_at_once_is_announced_before_cancel_returns(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    service.create_subscription(org_id, url=hook.url, events=["batch.cancelled"])
    with session_scope() as session:
        draft = create_batch(
            session,
            organisation_id=org_id,
            name="Never run",
            restaurant_ids=make_restaurants(session, org_id, 1),
        ).id
    threads_before = set(threading.enumerate())

    detail = lifecycle.cancel_batch(draft)

    assert detail.status == "cancelled"
    [(headers, body)] = hook.requests
    assert headers["X-Regbatch-Event"] == "batch.cancelled"
    assert json.loads(body)["batch"]["id"] == str(draft)
    assert [e.operation for e in webhook_log(draft)] == ["webhook_delivered"]
    left = [t for t in set(threading.enumerate()) - threads_before if not t.daemon]
    assert left == []  # nothing keeps a process alive after the cancel returned


def test_the_batch_flow_announces_its_outcome(
    org_id: uuid.UUID, receiver: Callable[..., Receiver], sandbox: object
) -> None:
    hook = receiver()
    service.create_subscription(org_id, url=hook.url)
    batch_id, _, _ = new_batch(org_id, 1)

    detail = run_batch(batch_id)

    assert detail.status == "completed"
    [(headers, body)] = hook.requests
    assert headers["X-Regbatch-Event"] == "batch.completed"
    assert json.loads(body)["batch"]["counts"]["completed"] == 1
    [entry] = webhook_log(batch_id)
    assert entry.operation == "webhook_delivered" and entry.details["attempt"] == 1


def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    port = hook.server.server_address[1]
    # Subscribed while private targets were allowed; `localhost` resolves to 127.0.0.1.
    service.create_subscription(org_id, url=f"http://localhost:{port}/hooks?token=t0p")
    batch_id = stopped_batch(org_id, "failed")
    with settings_env({"REGBATCH_WEBHOOK_ALLOW_PRIVATE": "0"}):
        [refused] = webhook_tasks.deliver_batch_event(batch_id, attempts=3, base_delay_s=DELAY)

    assert hook.requests == []  # nothing reached the receiver
    assert not refused.delivered and refused.attempts == 1 and refused.status_code is None
    assert refused.error == (
        f"refused: webhook URL http://localhost:{port}/hooks resolves to 127.0.0.1, a loopback "
        "address; webhooks go only to public addresses: use a publicly reachable receiver (or "
        "set REGBATCH_WEBHOOK_ALLOW_PRIVATE=1 to allow private targets for local testing)"
    )
    [entry] = webhook_log(batch_id)
    assert entry.operation == "webhook_failed" and entry.details["error"] == refused.error
    assert "t0p" not in json.dumps(entry.details)

    # The same subscription, private targets allowed again: the receiver was there all along.
    [delivered] = webhook_tasks.deliver_batch_event(batch_id, attempts=1)
    assert delivered.delivered and len(hook.requests) == 1
    assert hook.requests[0][0]["Host"] == f"localhost:{port}"
