"""The sandbox under concurrency: no global lock, a claim per idempotency key (409 IN_PROGRESS for a
second request while the first is processed), and the request log of every step request."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from regbatch.config import RegistrationConfig
from regbatch.errors import RateLimitedError
from regbatch.platform import PlatformClient, build_request
from regbatch.sandbox.control import SandboxControl
from regbatch.sandbox.server import SandboxServer
from regbatch.steps import StepKey, step

pytestmark = pytest.mark.anyio
K = StepKey
ORG = "org-unit-tests"
PASSWORD = "Owner-Pa55word-never-shown"
LOG_FIELDS = {
    "step",
    "restaurant",
    "idempotency_key",
    "received_at",
    "answered_at",
    "status",
    "outcome",
}
ISO_UTC_MICROSECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


@pytest.fixture
async def http(sandbox_app: FastAPI, service_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client of the in-process sandbox, to see answers as they are (status, headers)."""
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers={"X-Service-Key": service_key}
    ) as client:
        yield client


async def post_step(
    http: httpx.AsyncClient,
    key: StepKey,
    config: RegistrationConfig,
    rid: str,
    idempotency_key: str,
    results: dict[StepKey, dict[str, Any]] | None = None,
    **headers: str,
) -> httpx.Response:
    """POST one step's request as the client builds it; `headers` override the standard ones."""
    payload = build_request(key, config, results or {}, restaurant_id=rid, password=PASSWORD)
    sent = {"X-Organisation-ID": ORG, "Idempotency-Key": idempotency_key}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return await http.post(step(key).path, json=payload, headers=sent)


def in_progress_body(key: str) -> dict[str, Any]:
    message = f"a request with Idempotency-Key '{key}' is still being processed; retry after 1 s"
    return {"success": False, "error": {"code": "IN_PROGRESS", "message": message}}


def at(text: str) -> datetime:
    assert ISO_UTC_MICROSECONDS.match(text), text
    return datetime.fromisoformat(text)


async def test_one_key_twice_at_once_performs_once_and_the_other_is_in_progress(
    http: httpx.AsyncClient, new_restaurant: Any, control: Any, sandbox_app: FastAPI
):
    await control("PUT", "/_sandbox/latency", {"default_ms": 300})
    rid, config = new_restaurant()
    key = "job-1:account_registration"

    both = await asyncio.gather(
        post_step(http, K.ACCOUNT_REGISTRATION, config, rid, key),
        post_step(http, K.ACCOUNT_REGISTRATION, config, rid, key),
    )

    performed, in_progress = sorted(both, key=lambda r: r.status_code)
    assert (performed.status_code, in_progress.status_code) == (200, 409)
    assert in_progress.json() == in_progress_body(key)
    assert in_progress.headers["Retry-After"] == "1"
    assert len(sandbox_app.state.sandbox.state.accounts) == 1
    assert sandbox_app.state.sandbox.claims == set()
    ledger = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [(e["idempotency_key"], e["replay"]) for e in ledger] == [(key, False)]

    third = await post_step(http, K.ACCOUNT_REGISTRATION, config, rid, key)
    assert (third.status_code, third.json()) == (200, performed.json())
    ledger = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [e["replay"] for e in ledger] == [False, True]

    log = (await control("GET", "/_sandbox/requests"))["entries"]
    assert sorted(e["outcome"] for e in log[:2]) == ["in_progress", "performed"]
    assert (log[2]["outcome"], log[2]["status"]) == ("replay", 200)
    first, second = log[:2]
    # the two really overlapped: each arrived before the other was answered
    assert at(first["received_at"]) < at(second["answered_at"])
    assert at(second["received_at"]) < at(first["answered_at"])


async def test_requests_with_different_keys_overlap(
    run_step: Any, new_restaurant: Any, control: Any
):
    await control("PUT", "/_sandbox/latency", {"default_ms": 200})
    restaurants = [new_restaurant() for _ in range(10)]
    started = time.monotonic()
    await asyncio.gather(
        *(
            run_step(K.CODE_GENERATION, cfg, {}, restaurant_id=rid, job_id=rid)
            for rid, cfg in restaurants
        )
    )
    # serialised, ten requests of 200 ms would take 2 s; this checks behaviour, not speed
    assert time.monotonic() - started < 1.0
    assert (await control("GET", "/_sandbox/stats"))["max_in_flight_restaurants"] == 10
    log = (await control("GET", "/_sandbox/requests"))["entries"]
    assert [e["outcome"] for e in log] == ["performed"] * 10


async def test_the_request_log_records_every_step_request_in_arrival_order(
    http: httpx.AsyncClient, new_restaurant: Any, control: Any, service_key: str
):
    latency_s = 0.1
    await control("PUT", "/_sandbox/latency", {"default_ms": latency_s * 1000})
    rid, config = new_restaurant()
    faulty_id, faulty = new_restaurant()
    rule = {"restaurant": faulty_id, "step": "code_generation", "kind": "transient", "times": 1}
    await control("POST", "/_sandbox/faults", {"rules": [rule]})
    unknown = {K.RESTAURANT_REGISTRATION: {"platform_restaurant_id": "rest_nope"}}
    cg, pay = K.CODE_GENERATION, K.PAYMENT_CONFIGURATION

    statuses = [
        (await post_step(http, cg, config, rid, "j:cg", X_Service_Key="wrong")).status_code,
        (await post_step(http, cg, config, rid, "j:cg", X_Organisation_ID="")).status_code,
        (await post_step(http, cg, faulty, faulty_id, "f:cg")).status_code,
        (await post_step(http, cg, config, rid, "j:cg")).status_code,
        (await post_step(http, cg, config, rid, "j:cg")).status_code,
        (await post_step(http, pay, config, rid, "j:pay", unknown)).status_code,
        (await post_step(http, pay, config, rid, "j:cg", unknown)).status_code,
    ]
    both = await asyncio.gather(
        post_step(http, cg, faulty, faulty_id, "f:cg"),
        post_step(http, cg, faulty, faulty_id, "f:cg"),
    )
    statuses += [r.status_code for r in both]

    log = (await control("GET", "/_sandbox/requests"))["entries"]
    assert all(set(entry) == LOG_FIELDS for entry in log)
    assert [(e["step"], e["restaurant"], e["idempotency_key"]) for e in log] == [
        ("code_generation", None, "j:cg"),  # the body of an unauthorized request is not read
        ("code_generation", rid, "j:cg"),
        ("code_generation", faulty_id, "f:cg"),
        ("code_generation", rid, "j:cg"),
        ("code_generation", rid, "j:cg"),
        ("payment_configuration", rid, "j:pay"),
        ("payment_configuration", rid, "j:cg"),
        ("code_generation", faulty_id, "f:cg"),
        ("code_generation", faulty_id, "f:cg"),
    ]
    assert [(e["status"], e["outcome"]) for e in log[:7]] == [
        (401, "unauthorized"),
        (400, "invalid"),
        (503, "fault"),
        (200, "performed"),
        (200, "replay"),
        (404, "refused"),
        (422, "refused"),  # Idempotency-Key reused for another step
    ]
    assert sorted((e["status"], e["outcome"]) for e in log[7:]) == [
        (200, "performed"),
        (409, "in_progress"),
    ]
    assert statuses[:7] == [e["status"] for e in log[:7]]
    assert sorted(statuses[7:]) == [200, 409]
    for entry in log:
        received, answered = at(entry["received_at"]), at(entry["answered_at"])
        assert received <= answered
        if entry["outcome"] != "unauthorized":  # refused by the middleware, before any latency
            # received_at is taken on arrival, before the latency
            assert answered - received >= timedelta(seconds=latency_s), entry
    assert [at(e["received_at"]) for e in log] == sorted(at(e["received_at"]) for e in log)

    await control("POST", "/_sandbox/reset")
    assert (await control("GET", "/_sandbox/requests"))["entries"] == []


async def test_image_polls_and_control_calls_are_not_in_the_request_log(
    run_step: Any, new_restaurant: Any, control: Any
):
    rid, config = new_restaurant()
    result = await run_step(K.IMAGE_UPLOAD, config, {}, restaurant_id=rid, job_id="j")
    assert result["status"] == "completed"  # it was polled until it completed
    await control("GET", "/_sandbox/stats")
    log = (await control("GET", "/_sandbox/requests"))["entries"]
    assert [(e["step"], e["status"], e["outcome"]) for e in log] == [
        ("image_upload", 202, "performed")
    ]


async def test_a_claim_is_released_when_the_step_is_refused(
    http: httpx.AsyncClient, new_restaurant: Any, control: Any, sandbox_app: FastAPI
):
    await control("PUT", "/_sandbox/config", {"account_spacing_s": 60})
    rid, config = new_restaurant()
    other_id, other = new_restaurant()
    ar = K.ACCOUNT_REGISTRATION
    assert (await post_step(http, ar, config, rid, "j1:ar")).status_code == 200
    assert (await post_step(http, ar, other, other_id, "j2:ar")).status_code == 429
    assert sandbox_app.state.sandbox.claims == set()
    await control("PUT", "/_sandbox/config", {"account_spacing_s": 0})
    # a refusal stored nothing and released the key: the same key performs now
    assert (await post_step(http, ar, other, other_id, "j2:ar")).status_code == 200
    ledger = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [(e["idempotency_key"], e["replay"]) for e in ledger] == [
        ("j1:ar", False),
        ("j2:ar", False),
    ]


async def test_a_claim_is_released_when_the_request_is_cancelled(
    http: httpx.AsyncClient, new_restaurant: Any, control: Any, sandbox_app: FastAPI
):
    sandbox = sandbox_app.state.sandbox
    await control("PUT", "/_sandbox/latency", {"default_ms": 5000})
    rid, config = new_restaurant()
    request = asyncio.create_task(post_step(http, K.CODE_GENERATION, config, rid, "j:cg"))
    while "j:cg" not in sandbox.claims:  # it holds the claim through its latency
        await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert sandbox.claims == set()
    assert (await control("GET", "/_sandbox/ledger"))["entries"] == []

    await control("PUT", "/_sandbox/latency", {"default_ms": 0})
    again = await post_step(http, K.CODE_GENERATION, config, rid, "j:cg")
    assert again.status_code == 200
    log = (await control("GET", "/_sandbox/requests"))["entries"]
    assert [(e["status"], e["outcome"]) for e in log] == [(None, "cancelled"), (200, "performed")]
    assert log[0]["answered_at"] is not None


# Over real HTTP: uvicorn in a thread, the real PlatformClient, SandboxControl over urllib.


async def test_over_http_the_client_reads_in_progress_as_rate_limited(
    new_restaurant: Any, service_key: str
):
    rid, config = new_restaurant()
    payload = build_request(
        K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, password=PASSWORD
    )
    with SandboxServer(service_key, account_spacing_s=0, latency_ms=300) as server:
        control = SandboxControl(server.url, service_key)
        async with PlatformClient(service_key=service_key, base_url=server.url) as client:

            async def register() -> dict[str, Any]:
                return await client.run_step(
                    K.ACCOUNT_REGISTRATION,
                    payload,
                    organisation_id=ORG,
                    idempotency_key="job-1:account_registration",
                    timeout_s=5,
                )

            outcomes = await asyncio.gather(register(), register(), return_exceptions=True)
            (result,) = [o for o in outcomes if isinstance(o, dict)]
            (error,) = [o for o in outcomes if isinstance(o, BaseException)]
            assert isinstance(error, RateLimitedError)
            assert (error.status_code, error.code, error.retry_after) == (409, "IN_PROGRESS", 1.0)
            assert "same Idempotency-Key" in str(error)
            assert PASSWORD not in str(error) and service_key not in str(error)
            assert await register() == result  # asked again: the stored answer

        log = control.requests()
        assert sorted(e["outcome"] for e in log[:2]) == ["in_progress", "performed"]
        assert log[2]["outcome"] == "replay"
        assert [e["replay"] for e in control.ledger()] == [False, True]
        assert len(server.app.state.sandbox.state.accounts) == 1
        control.reset()
        assert control.requests() == []
