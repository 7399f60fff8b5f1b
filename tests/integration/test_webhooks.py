"""Webhook subscriptions and the planning of deliveries: secrets shown once, which subscribers
get which batch's event, the retry policy, and the `regbatch webhook` commands.

Nothing here needs Prefect (this tier has no Prefect server): deliveries are Prefect task runs,
tested in tests/flows/test_webhook_delivery.py with the `Receiver` and helpers defined here."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from regbatch.api import lifecycle
from regbatch.db.batches import create_batch
from regbatch.db.engine import session_scope
from regbatch.db.models import Batch, Job, JobStep, OperationLog, WebhookSubscription
from regbatch.db.types import utcnow
from regbatch.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from regbatch.services import webhooks as service
from regbatch.statuses import JobStatus
from regbatch.tasks import webhooks as webhook_tasks
from regbatch.tasks.webhooks import Answer, WebhookClient
from regbatch.webhook_targets import IPAddress
from regbatch.webhooks import WebhookEvent
from tests.cli import cli, cli_json
from tests.factories import make_org, make_restaurants
from tests.settings_env import settings_env

DELAY = 0.01  # seconds before the first retry (1 s in production)


class Receiver:
    """An HTTP server in a thread that answers POSTs with the given statuses (then 200).

    `before_answer` is called in the request's thread before it answers (e.g. a barrier).
    """

    def __init__(
        self,
        statuses: list[int] | None = None,
        delay_s: float = 0.0,
        before_answer: Callable[[], object] | None = None,
    ) -> None:
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
                if before_answer is not None:
                    before_answer()
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


def started_receivers() -> Iterator[Callable[..., Receiver]]:
    """`start(statuses, delay_s, before_answer)` -> a running Receiver; all closed at the end."""
    started: list[Receiver] = []

    def start(
        statuses: list[int] | None = None,
        delay_s: float = 0.0,
        before_answer: Callable[[], object] | None = None,
    ) -> Receiver:
        started.append(Receiver(statuses, delay_s, before_answer))
        return started[-1]

    yield start
    for each in started:
        each.close()


@pytest.fixture()
def receiver() -> Iterator[Callable[..., Receiver]]:
    yield from started_receivers()


def stopped_batch(org_id: uuid.UUID, status: str = "failed") -> uuid.UUID:
    """A batch of two restaurants that ended `status`: one completed, one failed at step 9."""
    with session_scope() as session:
        ids = make_restaurants(session, org_id, 2)
        batch = create_batch(
            session, organisation_id=org_id, name="Auckland Q4", restaurant_ids=ids
        )
        jobs = session.scalars(select(Job).where(Job.batch_id == batch.id).order_by(Job.position))
        done, failed = list(jobs)
        done.status, failed.status = JobStatus.COMPLETED, JobStatus.FAILED
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


def test_a_new_subscription_shows_its_secret_once_and_stores_it_encrypted(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    created = cli_json("webhook", "create", "--org", str(org_id), "--url", hook.url)
    assert set(created) == {"id", "url", "events", "secret"}
    assert created["events"] == [e.value for e in WebhookEvent]
    secret = created["secret"]
    listed = cli("webhook", "list", "--org", str(org_id), "--json").stdout
    assert secret not in listed
    assert [set(row) for row in json.loads(listed)] == [
        {"id", "url", "events", "active", "created_at"}
    ]
    with session_scope() as session:
        stored = session.get(WebhookSubscription, uuid.UUID(created["id"]))
        assert stored is not None and secret not in stored.secret_encrypted


def test_a_delivery_is_planned_as_the_signed_bytes_without_url_secrets(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    created = service.create_subscription(org_id, url=hook.url)
    batch_id = stopped_batch(org_id, "failed")

    [delivery] = service.plan_batch_event(batch_id)

    assert (delivery.subscription_id, delivery.batch_id) == (created.id, batch_id)
    assert delivery.event == "batch.failed" and delivery.organisation_id == org_id
    assert delivery.url == hook.url.split("?")[0]  # what logs and task runs may show
    payload = json.loads(delivery.body)
    assert delivery.body == json.dumps(payload, separators=(",", ":"))  # compact, as signed
    assert payload["batch"]["counts"] == {"total": 2, "completed": 1, "failed": 1, "cancelled": 0}
    [failure] = payload["failed_restaurants"]
    assert failure["step"] == "09-menu_import"
    assert failure["error"] == "menu CSV rejected: row 3 has no price"
    target = service.load_target(delivery)
    assert (target.url, target.secret) == (hook.url, created.secret)
    assert created.secret not in repr(target) and created.secret not in delivery.model_dump_json()
    assert webhook_log(batch_id) == []  # planning attempts nothing


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

    deliveries = service.plan_batch_event(their_batch)

    assert [d.subscription_id for d in deliveries] == [other.id]
    # a batch that has not stopped announces nothing; an explicit event overrides the status
    with session_scope() as session:
        draft = create_batch(
            session,
            organisation_id=org_id,
            name="Draft",
            restaurant_ids=make_restaurants(session, org_id, 1),
        ).id
    assert service.plan_batch_event(draft) == []
    planned = service.plan_batch_event(draft, WebhookEvent.BATCH_COMPLETED)
    assert len(planned) == 2 and len({d.delivery_id for d in planned}) == 2
    with session_scope() as session:
        lonely = make_org(session)
    assert service.plan_batch_event(stopped_batch(lonely)) == []


def test_nothing_to_deliver_needs_no_prefect(org_id: uuid.UUID) -> None:
    # This tier has no Prefect server: touching Prefect here would fail.
    service.create_subscription(org_id, url="https://hooks.example.com/x", events=["batch.failed"])
    with session_scope() as session:
        draft = create_batch(
            session,
            organisation_id=org_id,
            name="Draft",
            restaurant_ids=make_restaurants(session, org_id, 1),
        ).id
    assert webhook_tasks.deliver_batch_event(draft) == []
    assert lifecycle.cancel_batch(draft).status == "cancelled"  # nobody wants batch.cancelled
    assert webhook_log(draft) == []


def test_a_secret_that_cannot_be_decrypted_fails_before_any_attempt(
    org_id: uuid.UUID, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    created = service.create_subscription(org_id, url=hook.url)
    with session_scope() as session:
        session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == created.id)
            .values(secret_encrypted=Fernet(Fernet.generate_key()).encrypt(b"x").decode())
        )
    batch_id = stopped_batch(org_id, "failed")
    with pytest.raises(ConfigurationError, match=f"the secret of webhook {created.id} cannot be"):
        webhook_tasks.deliver_batch_event(batch_id)
    assert webhook_tasks.announce_batch_outcome(batch_id) == []  # logged, not raised
    assert hook.requests == [] and webhook_log(batch_id) == []


def test_the_retry_policy_comes_from_the_environment_when_not_given() -> None:
    assert service.delivery_policy() == service.DeliveryPolicy(4, 1.0, 10.0)
    assert service.delivery_policy(2, 0.5, 3) == service.DeliveryPolicy(2, 0.5, 3)
    quick = {"REGBATCH_WEBHOOK_ATTEMPTS": "2", "REGBATCH_WEBHOOK_BASE_DELAY_SECONDS": "0.01"}
    with settings_env(quick):
        assert service.delivery_policy() == service.DeliveryPolicy(2, 0.01, 10.0)
    with (
        settings_env({"REGBATCH_WEBHOOK_ATTEMPTS": "many"}),
        pytest.raises(ConfigurationError, match="REGBATCH_WEBHOOK_ATTEMPTS: "),
    ):
        service.delivery_policy()
    with pytest.raises(ValueError, match="attempts=0, .* give 1 to 20 attempts"):
        service.delivery_policy(attempts=0)


def test_bad_subscriptions_report_every_problem_and_write_nothing(org_id: uuid.UUID) -> None:
    with pytest.raises(InvalidInputError) as caught:
        service.create_subscription(
            org_id, url="ftp://files.example.com", events=["batch.completed", "batch.done"]
        )
    assert [p.field for p in caught.value.problems] == ["url", "events"]
    assert service.list_subscriptions(org_id) == []


def test_webhook_commands(org_id: uuid.UUID, receiver: Callable[..., Receiver]) -> None:
    org = str(org_id)
    hook = receiver()
    created = cli_json(
        "webhook", "create", "--org", org, "--url", hook.url,
        "--event", "batch.failed", "--event", "batch.paused",
    )  # fmt: skip
    assert created["events"] == ["batch.failed", "batch.paused"]
    batch_id = stopped_batch(org_id, "failed")
    human = cli("webhook", "create", "--org", org, "--url", hook.url).stdout
    assert "secret: whsec_" in human

    # `webhook test` refuses before anything is sent (sending is a Prefect task run: tests/flows)
    with session_scope() as session:
        other_org = make_org(session)
    with pytest.raises(NotFoundError, match="does not exist in this organisation"):
        webhook_tasks.deliver_to_subscription(other_org, created["id"], batch_id)
    with session_scope() as session:
        draft = create_batch(
            session,
            organisation_id=org_id,
            name="Draft",
            restaurant_ids=make_restaurants(session, org_id, 1),
        ).id
    with pytest.raises(ConflictError, match="is 'draft', which no webhook event announces"):
        webhook_tasks.deliver_to_subscription(org, created["id"], draft)

    assert cli_json("webhook", "delete", created["id"], "--org", org)["deleted"] is True
    assert created["id"] not in {row["id"] for row in cli_json("webhook", "list", "--org", org)}
    gone = cli("webhook", "delete", created["id"], "--org", org, check=False)
    assert gone.returncode == 1 and gone.stderr.startswith(f"error: webhook {created['id']}")
    assert hook.requests == []


# --- which targets are allowed ----------------------------------------------------------------


@pytest.fixture()
def public_only() -> Iterator[None]:
    """REGBATCH_WEBHOOK_ALLOW_PRIVATE off, as in production (the tests' receivers need it on)."""
    with settings_env({"REGBATCH_WEBHOOK_ALLOW_PRIVATE": "0"}):
        yield


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://169.254.169.254/latest/meta-data/", "is 169.254.169.254"),
        ("http://2130706433/hooks", "is 127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/hooks", "is ::ffff:7f00:1"),
        ("http://localhost:9/hooks?token=t0p", "resolves to 127.0.0.1"),  # asks DNS (/etc/hosts)
    ],
)
@pytest.mark.usefixtures("public_only")
def test_a_subscription_to_a_non_public_target_is_refused_and_writes_nothing(
    org_id: uuid.UUID, url: str, address: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        service.create_subscription(org_id, url=url)
    [problem] = caught.value.problems
    assert problem.field == "url" and f" {address}, " in problem.message
    assert problem.message.startswith(f"webhook URL {url.split('?')[0]} ")
    assert "REGBATCH_WEBHOOK_ALLOW_PRIVATE=1" in problem.message or (
        "no setting allows this range" in problem.message
    )
    assert "t0p" not in problem.message
    assert service.list_subscriptions(org_id) == []


@pytest.mark.usefixtures("public_only")
def test_the_cli_refuses_a_private_target_and_credentials(org_id: uuid.UUID) -> None:
    refused = cli(
        "webhook", "create", "--org", str(org_id), "--url", "http://10.0.0.1/", check=False
    )
    assert refused.returncode != 0 and "10.0.0.1, a private-network address" in refused.stderr
    leaky = cli(
        "webhook", "create", "--org", str(org_id), "--url", "https://bob:hunter2@example.com/",
        check=False,
    )  # fmt: skip
    assert leaky.returncode != 0 and "credentials (user:password@)" in leaky.stderr
    assert "hunter2" not in leaky.stderr + leaky.stdout
    assert service.list_subscriptions(org_id) == []


def test_the_setting_allows_private_targets_but_never_the_metadata_service(
    org_id: uuid.UUID,
) -> None:
    # REGBATCH_WEBHOOK_ALLOW_PRIVATE=1 here (tests/conftest.py)
    created = service.create_subscription(org_id, url="http://localhost:9/hooks")
    assert created.url == "http://localhost:9/hooks"
    with pytest.raises(InvalidInputError, match=r"link-local .*\(no setting allows this range\)"):
        service.create_subscription(org_id, url="http://169.254.169.254/latest/")
    assert [s.id for s in service.list_subscriptions(org_id)] == [created.id]


def test_the_connection_goes_to_the_address_that_was_checked(
    receiver: Callable[..., Receiver],
) -> None:
    """`.invalid` never resolves: the POST can only reach the receiver through the address the
    guard resolved and checked, and a second lookup would have failed."""
    hook = receiver()
    port = hook.server.server_address[1]
    lookups: list[str] = []

    def resolver(host: str, _port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    async def post(allow_private: bool) -> Answer:
        client = WebhookClient(allow_private=allow_private, resolver=resolver, timeout_s=5)
        async with client:
            return await client.post(f"http://hooks.rebind.invalid:{port}/in", b"{}", {})

    assert asyncio.run(post(allow_private=True)) == Answer(200)
    assert lookups == ["hooks.rebind.invalid"]
    assert hook.requests[0][0]["Host"] == f"hooks.rebind.invalid:{port}"

    refused = asyncio.run(post(allow_private=False))
    assert refused.status_code is None and not refused.transient
    assert (
        refused.error is not None and "resolves to 127.0.0.1, a loopback address" in refused.error
    )
    assert len(hook.requests) == 1  # the refused one reached nothing
