"""Webhook payloads and signatures: what a receiver gets, and how it checks it came from us;
how the delivery client reads answers, and which failures Prefect retries (no I/O, no server)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prefect.states import Completed, Failed

from regbatch.statuses import JobStatus, StepStatus
from regbatch.tasks.webhooks import Answer, WebhookClient, _only_transient, status_answer
from regbatch.views import BatchDetail, JobView, StepView
from regbatch.webhooks import (
    PermanentWebhookError,
    TransientWebhookError,
    WebhookEvent,
    build_payload,
    encode_body,
    event_for_status,
    event_problems,
    generate_secret,
    is_transient_status,
    redact_url,
    sign,
    signature_header,
    url_problems,
    verify,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 9, 47, 23, tzinfo=UTC)
SECRET = "whsec_unit-test-secret"
PUBLIC = ipaddress.IPv4Address("93.184.215.14")  # what the fake resolver answers for any name


def _step(number: int, key: str, status: str, error: str | None = None) -> StepView:
    return StepView(
        step_number=number,
        step_key=key,
        status=StepStatus(status),
        attempts=1,
        started_at=T0,
        completed_at=T1,
        duration_ms=10,
        result_data=None,
        error_message=error,
        error_details=None,
        skip_reason=None,
        blocked_by_step=None,
        carried_over=False,
    )


def _job(
    position: int, name: str, status: str, steps: list[StepView], error: str | None = None
) -> JobView:
    return JobView(
        id=uuid.uuid4(),
        restaurant_id=uuid.uuid4(),
        restaurant_name=name,
        position=position,
        status=JobStatus(status),
        current_step=None,
        error_message=error,
        error_details=None,
        retry_of_job_id=None,
        started_at=T0,
        completed_at=T1,
        steps=steps,
    )


def detail(status: str = "completed", **changes: Any) -> BatchDetail:
    jobs = [
        _job(0, "Pizza Palace", "completed", [_step(1, "account_registration", "completed")]),
        _job(
            1,
            "Sushi Bar",
            "failed",
            [
                _step(5, "restaurant_registration", "completed"),
                _step(9, "menu_import", "failed", "menu CSV rejected: row 3 has no price"),
            ],
        ),
        _job(2, "Taco Truck", "failed", [], error="restaurant has no contact email"),
    ]
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "name": "Auckland Q4",
        "status": status,
        "execution_mode": "parallel",
        "concurrency": 2,
        "total": 3,
        "completed": 1,
        "failed": 2,
        "cancelled": 0,
        "created_at": T0,
        "started_at": T0,
        "completed_at": T1,
        "retry_of_batch_id": None,
        "organisation_id": uuid.uuid4(),
        "settings": {},
        "created_by": "user:cli",
        "breaker_threshold": 0.5,
        "breaker_min_finished": 3,
        "requested_action": None,
        "pause_reason": None,
        "error_message": None,
        "paused_at": None,
        "cancelled_at": None,
        "updated_at": T1,
        "jobs": jobs,
    }
    return BatchDetail(**{**values, **changes})


def test_the_payload_summarises_the_batch_and_names_each_failure() -> None:
    batch = detail("failed")
    retry_id = uuid.uuid4()
    payload = build_payload(batch, WebhookEvent.BATCH_FAILED, retry_batch_id=retry_id)
    assert json.loads(json.dumps(payload)) == payload  # JSON types only
    assert payload["event"] == "batch.failed"
    assert payload["organisation_id"] == str(batch.organisation_id)
    assert payload["retry_batch_id"] == str(retry_id)
    summary = payload["batch"]
    assert summary["id"] == str(batch.id) and summary["name"] == "Auckland Q4"
    assert summary["status"] == "failed"
    assert summary["counts"] == {"total": 3, "completed": 1, "failed": 2, "cancelled": 0}
    assert summary["started_at"] == "2026-12-01T09:00:00+00:00"
    assert summary["completed_at"] == "2026-12-01T09:47:23+00:00"
    assert summary["path"] == f"/registration-batches/{batch.id}"
    assert "url" not in summary
    sushi, taco = payload["failed_restaurants"]
    assert sushi["restaurant_name"] == "Sushi Bar"
    assert sushi["job_id"] == str(batch.jobs[1].id)
    assert sushi["step"] == "09-menu_import"
    assert sushi["error"] == "menu CSV rejected: row 3 has no price"
    assert sushi["summary"] == "09-menu_import: menu CSV rejected: row 3 has no price"
    # failed before any step ran (pre-flight at run time): the job's own error
    assert taco["step"] is None and taco["error"] == "restaurant has no contact email"


def test_a_paused_batch_carries_its_reason_and_an_absolute_link_when_asked() -> None:
    reason = "breaker: 3 of 4 finished restaurants failed (75% > 50%)"
    batch = detail("paused", pause_reason=reason, paused_at=T1, completed_at=None)
    payload = build_payload(batch, WebhookEvent.BATCH_PAUSED, base_url="https://ops.example.com/")
    assert payload["batch"]["pause_reason"] == reason
    assert payload["batch"]["paused_at"] == T1.isoformat()
    assert payload["batch"]["url"] == f"https://ops.example.com/registration-batches/{batch.id}"
    assert payload["retry_batch_id"] is None


@pytest.mark.parametrize(
    ("status", "event"),
    [
        ("completed", WebhookEvent.BATCH_COMPLETED),
        ("failed", WebhookEvent.BATCH_FAILED),
        ("paused", WebhookEvent.BATCH_PAUSED),
        ("cancelled", WebhookEvent.BATCH_CANCELLED),
        ("draft", None),
        ("pending", None),
        ("in_progress", None),
    ],
)
def test_each_stopped_status_has_its_event(status: str, event: WebhookEvent | None) -> None:
    assert event_for_status(status) == event


def test_the_signature_is_an_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"batch.completed","batch":{"id":"x"}}'
    expected = hmac.new(SECRET.encode(), b"1764579600." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1764579600, body) == expected
    assert signature_header(SECRET, 1764579600, body) == f"t=1764579600,v1={expected}"


def test_verify_accepts_a_good_header_and_rejects_anything_else() -> None:
    body = json.dumps({"event": "batch.completed"}, separators=(",", ":")).encode()
    now = 1_764_579_600
    header = signature_header(SECRET, now, body)
    assert verify(SECRET, header, body, now=now + 10)
    assert not verify(SECRET, header, body + b" ", now=now)  # tampered body
    assert not verify(SECRET, header, body.replace(b"completed", b"failed"), now=now)
    assert not verify("whsec_someone-else", header, body, now=now)  # wrong secret
    assert not verify(SECRET, header, body, now=now + 301)  # stale
    assert not verify(SECRET, header, body, now=now - 301)  # from the future
    assert verify(SECRET, header, body, tolerance_s=600, now=now + 301)
    forged = signature_header(SECRET, now + 1000, body).replace(str(now + 1000), str(now))
    assert not verify(SECRET, forged, body, now=now)  # a fresh timestamp swapped onto it
    for broken in ("", "v1=abc", f"t={now}", f"t=soon,v1={sign(SECRET, now, body)}", "t=1,v1=ü"):
        assert not verify(SECRET, broken, body, now=now)


def test_secrets_are_long_and_unique() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second and len(first) >= 40 and first.startswith("whsec_")


def test_urls_and_events_are_checked_and_urls_redacted_for_logs() -> None:
    assert url_problems("https://hooks.example.com/regbatch") == []
    assert url_problems("http://127.0.0.1:8080/x", allow_private=True) == []
    assert "a loopback address" in url_problems("http://127.0.0.1:8080/x")[0].message
    assert [p.field for p in url_problems("ftp://files.example.com")] == ["url"]
    assert "http or https" in url_problems("hooks.example.com/x")[0].message
    assert url_problems("https:///no-host")[0].message.endswith("e.g. https://hooks.example.com/x")
    assert event_problems(["batch.completed", "batch.done"])[0].message.startswith(
        "event 'batch.done' is not one of: batch.completed, batch.failed"
    )
    assert (
        redact_url("https://user:pw@hooks.example.com:8443/in?token=abc#frag")
        == "https://hooks.example.com:8443/in"
    )


# --- delivery: the client and what is retried ------------------------------------------------


def test_the_body_is_compact_utf8_json() -> None:
    assert encode_body({"name": "Café", "n": [1, 2]}) == '{"name":"Café","n":[1,2]}'.encode()


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        *[(status, True) for status in (408, 429, 500, 503, 599)],
        *[(status, False) for status in (400, 401, 404, 410, 422, 302)],
    ],
)
def test_only_408_429_and_5xx_answers_are_worth_another_attempt(
    status: int, transient: bool
) -> None:
    assert is_transient_status(status) is transient
    answer = status_answer(status, "Reason")
    assert answer == Answer(status, f"HTTP {status} Reason", transient)


def test_any_2xx_is_delivered() -> None:
    assert status_answer(200, "OK") == Answer(200) and status_answer(204) == Answer(204)


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> WebhookClient:
    return WebhookClient(
        timeout_s=0.2,
        transport=httpx.MockTransport(handler),
        resolver=lambda host, port: [PUBLIC],
    )


@pytest.mark.anyio
async def test_the_client_posts_the_bytes_and_headers_and_never_follows_a_redirect() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"Location": "https://elsewhere.example.com/"})
        return httpx.Response(202, text="x" * 10_000)

    async with _client(handler) as client:
        accepted = await client.post("https://hooks.example.com/in", b"{}", {"X-A": "1"})
        moved = await client.post("https://hooks.example.com/moved", b"{}", {})
    assert accepted == Answer(202)
    assert moved == Answer(302, "HTTP 302 Found", transient=False)
    # the redirect not followed; the connection went to the address the name resolved to
    assert [r.headers["Host"] for r in seen] == ["hooks.example.com"] * 2
    assert [r.url.host for r in seen] == [str(PUBLIC)] * 2
    assert seen[0].content == b"{}" and seen[0].method == "POST"
    assert seen[0].headers["X-A"] == "1"
    assert seen[0].headers["User-Agent"] == "regbatch-webhooks/1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), Answer(None, "connection failed: [Errno 111] Connection refused", True)),
        (httpx.ReadTimeout("slow"), Answer(None, "timed out after 0.2 s", True)),
        (httpx.RemoteProtocolError("peer closed"), Answer(None, "connection failed: peer closed", True)),
        (httpx.UnsupportedProtocol("no gopher"), Answer(None, "UnsupportedProtocol: no gopher")),
    ],
)  # fmt: skip
async def test_the_client_answers_for_connection_errors_and_timeouts(
    error: Exception, expected: Answer
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with _client(handler) as client:
        assert await client.post("https://hooks.example.com/in", b"{}", {}) == expected


def test_prefect_retries_only_transient_failures() -> None:
    def state(error: Exception) -> Any:
        return Failed(data=error)

    def transient() -> TransientWebhookError:
        return TransientWebhookError("x", reason="HTTP 503", status_code=503, attempt=1)

    def permanent() -> PermanentWebhookError:
        return PermanentWebhookError("x", reason="HTTP 404", status_code=404, attempt=1)

    task: Any = None
    assert _only_transient(task, task, state(transient())) is True
    assert _only_transient(task, task, state(permanent())) is False
    assert _only_transient(task, task, state(RuntimeError("database down"))) is False
    assert _only_transient(task, task, Completed(data="a result")) is False
