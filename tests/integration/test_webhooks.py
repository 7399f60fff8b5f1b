"""Webhook deliveries to real HTTP receivers on 127.0.0.1: signatures, retries, the operation
log, organisation isolation, and the `regbatch webhook` commands."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select, update

from regbatch.db.batches import create_batch
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep, OperationLog, WebhookSubscription
from regbatch.db.types import utcnow
from regbatch.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from regbatch.services import webhooks as service
from regbatch.settings import reset_settings
from regbatch.webhooks import WebhookEvent, verify
from tests.cli import cli, cli_json
from tests.conftest import free_port
from tests.factories import make_org, make_restaurants

DELAY = 0.01  # seconds before the first retry (1 s in production)


class Receiver:
    """An HTTP server in a thread that answers POSTs with the given statuses (then 200)."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.methods: list[str] = []
        statuses_left = list(statuses or [])
        received = self.requests
        methods = self.methods

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                methods.append(self.command)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers.items()), body))
                time.sleep(delay_s)
                status = statuses_left.pop(0) if statuses_left else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET = _answer

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (the timeout test) is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/regbatch?token=t0p"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(statuses: list[int] | None = None, delay_s: float = 0.0) -> Receiver:
        started.append(Receiver(statuses, delay_s))
        return started[-1]

    yield start
    for each in started:
        each.close()


def stopped_batch(org_id: uuid.UUID, status: str = "failed") -> uuid.UUID:
    """A batch of two restaurants that ended `status`: one completed, one failed at step 9."""
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 2)
        batch = create_batch(
            session, organisation_id=org_id, name="Auckland Q4", restaurant_ids=ids
        )
        jobs = session.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.position))
        done, failed = list(jobs)
        done.status, failed.status = "completed", "failed"
        session.execute(
            update(JobStep)
            .where(JobStep.job_id == failed.id, JobStep.step_number == 9)
            .values(status="failed", error_message="menu CSV rejected: row 3 has no price")
        )
        now = utcnow()
        session.execute(
            update(Batch)
            .where(Batch.id == batch.id)
            .values(
                status=status,
                completed_restaurants=1,
                failed_restaurants=1,
                started_at=now - timedelta(minutes=47),
                completed_at=now if status in ("completed", "failed") else None,
                paused_at=now if status == "paused" else None,
            )
        )
        return batch.id


def webhook_log(batch_id: uuid.UUID) -> list[OperationLog]:
    with session_scope() as session:
        query = select(OperationLog).where(
            OperationLog.batch_id == batch_id,
            OperationLog.operation.in_(["webhook_delivered", "webhook_failed"]),
        )
        return list(session.scalars(query.order_by(OperationLog.id)))


def test_a_delivery_is_signed_with_the_secret_shown_once_and_logged_without_it(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    created = cli_json("webhook", "create", "--org", str(org_id), "--url", hook.url)
    assert set(created) == {"id", "url", "events", "secret"}
    assert created["events"] == [e.value for e in WebhookEvent]
    secret = created["secret"]
    batch_id = stopped_batch(org_id, "failed")

    [result] = service.deliver_batch_event(batch_id, base_delay_s=DELAY)

    assert result.delivered and result.attempts == 1 and result.status_code == 200
    assert result.url == hook.url.split("?")[0]
    [(headers, body)] = hook.requests
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Regbatch-Event"] == "batch.failed"
    assert headers["X-Regbatch-Delivery"] == str(result.delivery_id)
    assert verify(secret, headers["X-Regbatch-Signature"], body)
    assert not verify(secret, headers["X-Regbatch-Signature"], body.replace(b"failed", b"fine"))
    payload = json.loads(body)
    assert body == json.dumps(payload, separators=(",", ":")).encode()  # compact, as signed
    assert payload["event"] == "batch.failed"
    assert payload["batch"]["id"] == str(batch_id)
    assert payload["batch"]["counts"] == {"total": 2, "completed": 1, "failed": 1, "cancelled": 0}
    [failure] = payload["failed_restaurants"]
    assert failure["step"] == "09-menu_import"
    assert failure["error"] == "menu CSV rejected: row 3 has no price"

    [entry] = webhook_log(batch_id)
    assert entry.operation == "webhook_delivered" and entry.actor == "system"
    assert entry.details == {
        "subscription_id": created["id"],
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
    assert secret not in logged and signature not in logged and "t0p" not in logged
    listed = cli("webhook", "list", "--org", str(org_id), "--json").stdout
    assert secret not in listed
    assert [set(row) for row in json.loads(listed)] == [
        {"id", "url", "events", "active", "created_at"}
    ]
    with session_scope() as session:
        stored = session.get(WebhookSubscription, uuid.UUID(created["id"]))
        assert stored is not None and secret not in stored.secret_encrypted


def test_a_failing_receiver_is_retried_until_it_accepts(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver([500, 500])
    created = service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id, "completed")

    [result] = service.deliver_batch_event(batch_id, base_delay_s=DELAY)

    assert result.delivered and result.attempts == 3 and result.event == "batch.completed"
    assert len(hook.requests) == 3
    assert {headers["X-Regbatch-Delivery"] for headers, _ in hook.requests} == {
        str(result.delivery_id)
    }  # one delivery id across its attempts, so receivers can drop duplicates
    assert all(verify(created.secret, h["X-Regbatch-Signature"], b) for h, b in hook.requests)
    log = webhook_log(batch_id)
    assert [e.operation for e in log] == ["webhook_failed", "webhook_failed", "webhook_delivered"]
    assert [e.details["attempt"] for e in log] == [1, 2, 3]
    assert [e.details["status_code"] for e in log] == [500, 500, 200]
    assert log[0].details["error"] == "HTTP 500 Internal Server Error"


def test_a_receiver_that_is_down_is_logged_as_failed_and_nothing_raises(
    org_id: uuid.UUID,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks"
    service.create_subscription(org_id, url=url, events=["batch.paused"])
    batch_id = stopped_batch(org_id, "paused")

    [result] = service.deliver_batch_event(batch_id, attempts=3, base_delay_s=DELAY)

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

    results = service.deliver_batch_event(batch_id, attempts=1, timeout_s=0.2, base_delay_s=DELAY)

    by_url = {r.url: r for r in results}
    redirected, timed_out = by_url[moved.url.split("?")[0]], by_url[slow.url.split("?")[0]]
    assert not redirected.delivered and redirected.status_code == 302
    assert moved.methods == ["POST"]  # not re-sent as a bodiless GET to the new location
    assert not timed_out.delivered and timed_out.error == "timed out after 0.2 s"


def test_subscribers_get_only_their_organisations_batches_and_their_events(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    with session_scope() as session:
        other_org = make_org(session)
    ours, theirs, completed_only = receiver(), receiver(), receiver()
    service.create_subscription(org_id, url=ours.url)
    service.create_subscription(org_id, url=completed_only.url, events=["batch.completed"])
    other = service.create_subscription(other_org, url=theirs.url)
    their_batch = stopped_batch(other_org, "failed")

    results = service.deliver_batch_event(their_batch, base_delay_s=DELAY)

    assert [r.subscription_id for r in results] == [other.id]
    assert len(theirs.requests) == 1 and ours.requests == [] and completed_only.requests == []
    # a batch that has not stopped announces nothing; an explicit event overrides the status
    with session_scope() as session:
        draft = create_batch(
            session,
            organisation_id=org_id,
            name="Draft",
            restaurant_ids=make_restaurants(session, org_id, 1),
        ).id
    assert service.deliver_batch_event(draft, base_delay_s=DELAY) == []
    sent = service.deliver_batch_event(draft, WebhookEvent.BATCH_COMPLETED, base_delay_s=DELAY)
    assert len(sent) == 2 and len(completed_only.requests) == 1
    with session_scope() as session:
        lonely = make_org(session)
    assert service.deliver_batch_event(stopped_batch(lonely), base_delay_s=DELAY) == []


def test_the_async_variant_delivers_from_a_worker_thread(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id, "cancelled")
    results = asyncio.run(service.deliver_batch_event_async(batch_id, base_delay_s=DELAY))
    assert [r.event for r in results] == ["batch.cancelled"] and results[0].delivered


def test_the_retry_policy_comes_from_the_environment_when_not_given(
    org_id: uuid.UUID, receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = receiver([503, 503, 503])
    service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id)
    monkeypatch.setenv("REGBATCH_WEBHOOK_ATTEMPTS", "2")
    monkeypatch.setenv("REGBATCH_WEBHOOK_BASE_DELAY_SECONDS", "0.01")
    reset_settings()
    [result] = service.deliver_batch_event(batch_id)
    assert not result.delivered and result.attempts == 2 and len(hook.requests) == 2
    monkeypatch.setenv("REGBATCH_WEBHOOK_ATTEMPTS", "many")
    reset_settings()
    with pytest.raises(ConfigurationError, match="REGBATCH_WEBHOOK_ATTEMPTS: "):
        service.deliver_batch_event(batch_id)
    monkeypatch.undo()
    reset_settings()


def test_bad_subscriptions_report_every_problem_and_write_nothing(org_id: uuid.UUID) -> None:
    with pytest.raises(InvalidInputError) as caught:
        service.create_subscription(
            org_id, url="ftp://files.example.com", events=["batch.completed", "batch.done"]
        )
    assert [p.field for p in caught.value.problems] == ["url", "events"]
    assert service.list_subscriptions(org_id) == []


def test_webhook_commands(org_id: uuid.UUID, receiver: Callable[..., Receiver]) -> None:
    org = str(org_id)
    hook = receiver([500])
    created = cli_json(
        "webhook", "create", "--org", org, "--url", hook.url,
        "--event", "batch.failed", "--event", "batch.paused",
    )  # fmt: skip
    assert created["events"] == ["batch.failed", "batch.paused"]
    batch_id = stopped_batch(org_id, "failed")
    first = cli(
        "webhook", "test", created["id"], "--org", org, "--batch", str(batch_id),
        "--attempts", "1", "--json", check=False,
    )  # fmt: skip
    assert first.returncode == 1
    assert json.loads(first.stdout)["status_code"] == 500
    tested = cli_json("webhook", "test", created["id"], "--org", org, "--batch", str(batch_id))
    assert tested["delivered"] and tested["event"] == "batch.failed"
    human = cli("webhook", "create", "--org", org, "--url", hook.url).stdout
    assert "secret: whsec_" in human

    with session_scope() as session:
        other_org = make_org(session)
    with pytest.raises(NotFoundError, match="does not exist in this organisation"):
        service.deliver_to_subscription(other_org, created["id"], batch_id)
    with session_scope() as session:
        draft = create_batch(
            session,
            organisation_id=org_id,
            name="Draft",
            restaurant_ids=make_restaurants(session, org_id, 1),
        ).id
    with pytest.raises(ConflictError, match="is 'draft', which no webhook event announces"):
        service.deliver_to_subscription(org, created["id"], draft)

    assert cli_json("webhook", "delete", created["id"], "--org", org)["deleted"] is True
    assert created["id"] not in {row["id"] for row in cli_json("webhook", "list", "--org", org)}
    gone = cli("webhook", "delete", created["id"], "--org", org, check=False)
    assert gone.returncode == 1 and gone.stderr.startswith(f"error: webhook {created['id']}")
