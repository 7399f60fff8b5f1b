"""PlatformClient: how every kind of platform answer becomes a result or a typed error.

The platform is faked with `httpx.MockTransport`, the client's transport seam.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from regbatch.errors import (
    PermanentPlatformError,
    PlatformError,
    RateLimitedError,
    TransientPlatformError,
)
from regbatch.platform import PlatformClient
from regbatch.platform.answers import parse_retry_after
from regbatch.steps import StepKey

pytestmark = pytest.mark.anyio

KEY = "svc-key-0123456789abcdef"
PASSWORD = "Sup3r-Secret-Owner-Password"
ACCOUNT = {"account_id": "acct_1", "user_id": "user_1", "email": "o@example.com"}
ACCOUNT_PAYLOAD = {
    "restaurantId": "rest-1",
    "email": "o@example.com",
    "password": PASSWORD,
    "name": "Owner",
    "phone": None,
}
DETAIL_KEYS = {"status_code", "code", "message", "step", "endpoint"}

Handler = Callable[[httpx.Request], httpx.Response]


def reply(status: int, body: Any = None, **kw: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, **kw)
        return httpx.Response(status, json=body, **kw)

    return handler


def failure(code: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, **extra}}


async def account_step(handler: Handler, *, timeout_s: float = 30.0) -> dict[str, Any]:
    transport = httpx.MockTransport(handler)
    async with PlatformClient("http://platform.test", KEY, transport=transport) as client:
        return await client.run_step(
            StepKey.ACCOUNT_REGISTRATION,
            ACCOUNT_PAYLOAD,
            organisation_id="org-1",
            idempotency_key="job-1:account_registration",
            timeout_s=timeout_s,
        )


async def account_error(handler: Handler, **kw: Any) -> PlatformError:
    with pytest.raises(PlatformError) as caught:
        await account_step(handler, **kw)
    return caught.value


async def test_2xx_with_success_true_returns_the_typed_result() -> None:
    result = await account_step(reply(200, {"success": True, **ACCOUNT, "extra": 1}))
    assert result == {**ACCOUNT, "already_existed": False}


async def test_2xx_with_success_false_is_a_permanent_failure() -> None:
    error = await account_error(reply(200, failure("MENU_REJECTED", "3 items have no price")))
    assert isinstance(error, PermanentPlatformError)
    assert error.code == "MENU_REJECTED"
    assert error.status_code == 200
    assert "success: false" in str(error)
    assert error.details["message"] == "3 items have no price"


async def test_2xx_without_a_success_flag_is_permanent() -> None:
    error = await account_error(reply(200, ACCOUNT))
    assert isinstance(error, PermanentPlatformError)
    assert error.code == "INVALID_RESPONSE"


async def test_409_already_exists_is_success_with_the_existing_ids() -> None:
    body = failure("ALREADY_EXISTS", "an account with this email exists", existing=ACCOUNT)
    result = await account_step(reply(409, body))
    assert result == {**ACCOUNT, "already_existed": True}


async def test_409_already_exists_without_existing_ids_is_permanent() -> None:
    error = await account_error(reply(409, failure("ALREADY_EXISTS", "exists")))
    assert isinstance(error, PermanentPlatformError)
    assert "without the existing ids" in str(error)


async def test_other_409_is_permanent() -> None:
    error = await account_error(reply(409, failure("SUBDOMAIN_TAKEN", "subdomain taken")))
    assert isinstance(error, PermanentPlatformError)
    assert (error.status_code, error.code) == (409, "SUBDOMAIN_TAKEN")


@pytest.mark.parametrize(
    "body", [failure("CONFLICT", "the account is locked"), {"detail": "Conflict"}, b"conflict"]
)
async def test_unknown_409_stays_permanent(body: Any) -> None:
    error = await account_error(reply(409, body, headers={"Retry-After": "1"}))
    assert type(error) is PermanentPlatformError
    assert error.status_code == 409


async def test_409_in_progress_is_rate_limited_with_retry_after() -> None:
    message = "a request with Idempotency-Key 'job-1:account_registration' is still being processed"
    body = failure("IN_PROGRESS", message)
    error = await account_error(reply(409, body, headers={"Retry-After": "2"}))
    assert isinstance(error, RateLimitedError)
    assert error.transient
    assert (error.status_code, error.code, error.retry_after) == (409, "IN_PROGRESS", 2.0)
    text = str(error)
    assert "still processing the same request" in text
    assert "waits 2 s and asks again with the same Idempotency-Key" in text
    assert error.details["message"] == message


async def test_409_in_progress_without_retry_after_waits_one_second() -> None:
    error = await account_error(reply(409, failure("IN_PROGRESS", "still being processed")))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 1.0


async def test_400_is_permanent_and_names_step_status_and_fix() -> None:
    error = await account_error(reply(400, failure("VALIDATION_ERROR", "email: bad address")))
    assert isinstance(error, PermanentPlatformError)
    assert not error.transient
    assert (error.status_code, error.code) == (400, "VALIDATION_ERROR")
    text = str(error)
    assert text.startswith("account_registration failed: the platform answered 400")
    assert "email: bad address" in text
    assert "fix the input" in text


async def test_404_is_permanent_and_points_at_unknown_ids() -> None:
    error = await account_error(reply(404, {"detail": "Not Found"}))
    assert isinstance(error, PermanentPlatformError)
    assert (error.status_code, error.code) == (404, "HTTP_404")
    assert "unknown to the platform" in str(error)


async def test_401_is_permanent_and_points_at_the_service_key() -> None:
    error = await account_error(reply(401, failure("UNAUTHORIZED", "bad key")))
    assert isinstance(error, PermanentPlatformError)
    assert "REGBATCH_PLATFORM_SERVICE_KEY" in str(error)


async def test_408_is_transient() -> None:
    error = await account_error(reply(408, b"request timeout"))
    assert isinstance(error, TransientPlatformError)
    assert error.transient
    assert error.status_code == 408


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_transient(status: int) -> None:
    error = await account_error(reply(status, failure("UNAVAILABLE", "try later")))
    assert type(error) is TransientPlatformError
    assert error.status_code == status
    assert "retried" in str(error)


async def test_429_is_rate_limited_with_retry_after_seconds() -> None:
    error = await account_error(reply(429, failure("RATE_LIMITED"), headers={"Retry-After": "7"}))
    assert isinstance(error, RateLimitedError)
    assert isinstance(error, TransientPlatformError)
    assert error.retry_after == 7.0
    assert "7 s" in str(error)


async def test_429_with_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    error = await account_error(reply(429, failure("RATE_LIMITED"), headers={"Retry-After": when}))
    assert isinstance(error, RateLimitedError)
    assert 25 <= error.retry_after <= 30


async def test_429_without_retry_after_defaults_to_one_second() -> None:
    error = await account_error(reply(429, failure("RATE_LIMITED")))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 1.0


def test_retry_after_parsing_edge_cases() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Mon, 31 Dec 2029 23:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") == 1.0
    assert parse_retry_after(None) == 1.0


async def test_transport_error_is_transient_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    error = await account_error(refuse)
    assert isinstance(error, TransientPlatformError)
    assert error.code == "CONNECTION_ERROR"
    assert error.status_code is None


async def test_real_connection_refused_is_transient() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with PlatformClient(f"http://127.0.0.1:{port}", KEY) as client:
        with pytest.raises(TransientPlatformError) as caught:
            await client.run_step(
                StepKey.CODE_GENERATION,
                {"restaurantId": "rest-1"},
                organisation_id="org-1",
                idempotency_key="job:code_generation",
                timeout_s=5,
            )
    assert caught.value.code == "CONNECTION_ERROR"
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_read_timeout_is_transient_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    error = await account_error(slow)
    assert isinstance(error, TransientPlatformError)
    assert error.code == "TIMEOUT"


async def test_the_step_timeout_bounds_the_whole_request() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"success": True, **ACCOUNT})

    loop = asyncio.get_running_loop()
    started = loop.time()
    transport = httpx.MockTransport(hang)
    async with PlatformClient("http://platform.test", KEY, transport=transport) as client:
        with pytest.raises(TransientPlatformError) as caught:
            await client.run_step(
                StepKey.ACCOUNT_REGISTRATION,
                ACCOUNT_PAYLOAD,
                organisation_id="org-1",
                idempotency_key="k",
                timeout_s=0.1,
            )
    assert caught.value.code == "TIMEOUT"
    assert "0.1 s" in str(caught.value)
    assert loop.time() - started < 2


async def test_non_json_2xx_is_permanent() -> None:
    error = await account_error(reply(200, b"<html>Welcome to nginx</html>"))
    assert isinstance(error, PermanentPlatformError)
    assert error.code == "INVALID_RESPONSE"
    assert "REGBATCH_PLATFORM_URL" in str(error)


async def test_2xx_missing_result_fields_is_permanent_and_names_them() -> None:
    error = await account_error(reply(200, {"success": True, "email": "o@example.com"}))
    assert isinstance(error, PermanentPlatformError)
    assert error.code == "INVALID_RESPONSE"
    assert error.status_code == 200
    assert "account_id" in str(error) and "user_id" in str(error)


async def test_sends_service_key_organisation_and_idempotency_headers() -> None:
    seen: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, **ACCOUNT})

    await account_step(capture, timeout_s=3600)
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/api/registration/account"
    assert request.headers["X-Service-Key"] == KEY
    assert request.headers["X-Organisation-ID"] == "org-1"
    assert request.headers["Idempotency-Key"] == "job-1:account_registration"
    assert json.loads(request.content) == ACCOUNT_PAYLOAD
    timeout = request.extensions["timeout"]
    assert timeout["connect"] == 10.0
    assert 3599 < timeout["read"] <= 3600


async def test_no_secret_reaches_error_messages_or_details() -> None:
    echo = f"rejected password {PASSWORD} for key {KEY}; body was {json.dumps(ACCOUNT_PAYLOAD)}"
    for handler in (
        reply(400, failure("VALIDATION_ERROR", echo)),
        reply(200, failure("BAD", echo)),
        reply(503, echo.encode()),
        reply(200, echo.encode()),
    ):
        error = await account_error(handler)
        assert set(error.details) == DETAIL_KEYS
        exposed = f"{error} {error!r} {json.dumps(error.details)}"
        assert PASSWORD not in exposed
        assert KEY not in exposed
        assert "***" in error.details["message"]


async def test_error_details_keep_only_the_tail_of_long_messages() -> None:
    message = "x" * 1000 + "the actual reason"
    error = await account_error(reply(400, failure("VALIDATION_ERROR", message)))
    assert len(error.details["message"]) == 300
    assert error.details["message"].endswith("the actual reason")
    assert error.details == {
        "status_code": 400,
        "code": "VALIDATION_ERROR",
        "message": error.details["message"],
        "step": "account_registration",
        "endpoint": "POST /api/registration/account",
    }


def upload_platform(statuses: list[dict[str, Any]], seen: list[httpx.Request]) -> Handler:
    """POST answers 202; each GET answers the next of `statuses` (the last one repeats)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(
                202, json={"success": True, "upload_id": "up-1", "status": "processing"}
            )
        polls = sum(r.method == "GET" for r in seen)
        return httpx.Response(
            200, json={"success": True, **statuses[min(polls, len(statuses)) - 1]}
        )

    return handler


async def upload(handler: Handler, timeout_s: float = 5.0) -> dict[str, Any]:
    transport = httpx.MockTransport(handler)
    async with PlatformClient(
        "http://platform.test", KEY, transport=transport, poll_interval_s=0.01
    ) as client:
        return await client.run_step(
            StepKey.IMAGE_UPLOAD,
            {"restaurantId": "r1", "menuId": "menu/1", "images": [{"item": "A", "url": "u"}]},
            organisation_id="org-1",
            idempotency_key="job:image_upload",
            timeout_s=timeout_s,
        )


async def test_image_upload_polls_until_completed() -> None:
    done = {"status": "completed", "images": [{"item": "A", "url": "u", "cdn_url": "cdn/a"}]}
    seen: list[httpx.Request] = []
    result = await upload(upload_platform([{"status": "processing"}] * 2 + [done], seen))
    assert result == {
        "already_existed": False,
        "upload_id": "up-1",
        "status": "completed",
        "images": [{"item": "A", "url": "u", "cdn_url": "cdn/a"}],
    }
    post, *polls = seen
    assert post.url.raw_path == b"/api/menus/menu%2F1/upload-images"
    assert json.loads(post.content) == {"restaurantId": "r1", "images": [{"item": "A", "url": "u"}]}
    assert len(polls) == 3
    assert {p.url.raw_path for p in polls} == {b"/api/menus/menu%2F1/upload-images/up-1"}
    assert all(p.headers["X-Organisation-ID"] == "org-1" for p in polls)


async def test_image_upload_that_fails_is_permanent() -> None:
    failed = {"status": "failed", "error": {"message": "image 2 is not an image"}}
    with pytest.raises(PermanentPlatformError) as caught:
        await upload(upload_platform([failed], []))
    assert caught.value.code == "UPLOAD_FAILED"
    assert caught.value.details["message"] == "image 2 is not an image"


async def test_image_upload_that_never_finishes_times_out_within_the_step_timeout() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(TransientPlatformError) as caught:
        await upload(upload_platform([{"status": "processing"}], seen), timeout_s=0.15)
    assert caught.value.code == "TIMEOUT"
    assert len(seen) > 3  # it kept polling until the time was up


async def test_image_upload_without_menu_id_is_missing_input() -> None:
    async with PlatformClient("http://platform.test", KEY) as client:
        with pytest.raises(PermanentPlatformError, match="menuId is missing") as caught:
            await client.run_step(
                StepKey.IMAGE_UPLOAD,
                {"restaurantId": "r1", "images": []},
                organisation_id="org-1",
                idempotency_key="k",
                timeout_s=1,
            )
    assert caught.value.code == "MISSING_INPUT"
