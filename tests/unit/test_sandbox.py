"""The sandbox platform, driven by the real PlatformClient in-process (httpx.ASGITransport), and
once over real HTTP with SandboxServer in a thread."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from regbatch.errors import (
    PermanentPlatformError,
    PlatformError,
    RateLimitedError,
    TransientPlatformError,
)
from regbatch.platform import PlatformClient, build_request
from regbatch.sandbox.control import SandboxControl, SandboxControlError
from regbatch.sandbox.server import SandboxServer
from regbatch.steps import STEPS, StepKey

pytestmark = pytest.mark.anyio
K = StepKey
ORG = "org-unit-tests"


def entries_for(ledger: dict[str, Any], restaurant: str) -> list[dict[str, Any]]:
    return [e for e in ledger["entries"] if e["restaurant"] == restaurant]


async def test_happy_path_runs_all_twelve_steps(run_all: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    results = await run_all(config, rid, job_id="job-1")

    assert list(results) == [spec.key for spec in STEPS]
    assert not any(r["already_existed"] for r in results.values())
    assert results[K.ACCOUNT_REGISTRATION]["email"] == config.account.email
    registered = results[K.RESTAURANT_REGISTRATION]
    assert registered["subdomain"] == config.restaurant.subdomain
    assert results[K.WEBSITE_CONFIGURATION]["website_url"] == registered["urls"]["ordering"]
    assert results[K.IMAGE_UPLOAD]["status"] == "completed"
    assert len(results[K.IMAGE_UPLOAD]["images"]) == 2
    assert results[K.MENU_IMPORT]["items_imported"] == 3
    assert results[K.MENU_IMPORT]["categories_imported"] == 2
    assert results[K.ONBOARDING_SYNC]["synced"] is True
    assert list(results[K.OPTION_SETS]["option_set_ids"]) == ["Size"]
    assert results[K.ITEM_TAGS]["mapped_items"] == 2
    assert results[K.PAYMENT_CONFIGURATION]["stripe_connect_url"].startswith("https://")

    ledger = await control("GET", "/_sandbox/ledger")
    assert [e["step"] for e in ledger["entries"]] == [str(spec.key) for spec in STEPS]
    assert all(e["restaurant"] == rid and not e["replay"] for e in ledger["entries"])
    assert ledger["entries"][0]["idempotency_key"] == "job-1:account_registration"
    stats = await control("GET", "/_sandbox/stats")
    assert stats == {"requests": 12, "in_flight_restaurants": 0, "max_in_flight_restaurants": 1}


async def test_the_menu_import_receives_the_cdn_urls(
    run_all: Any, new_restaurant: Any, sandbox_app: FastAPI
):
    rid, config = new_restaurant()
    results = await run_all(config, rid)
    cdn = {i["cdn_url"] for i in results[K.IMAGE_UPLOAD]["images"]}
    assert all(url.startswith("https://cdn.sandbox.test/") for url in cdn)
    payload = build_request(K.MENU_IMPORT, config, results, restaurant_id=rid)
    assert all(url in payload["csv"] for url in cdn)


async def test_same_idempotency_key_replays_and_performs_nothing(
    run_all: Any, new_restaurant: Any, control: Any, sandbox_app: FastAPI
):
    rid, config = new_restaurant()
    first = await run_all(config, rid, job_id="job-1")
    again = await run_all(config, rid, job_id="job-1")

    for key in (K.ACCOUNT_REGISTRATION, K.RESTAURANT_REGISTRATION, K.MENU_IMPORT, K.OPTION_SETS):
        assert again[key] == first[key]
    state = sandbox_app.state.sandbox.state
    assert (len(state.accounts), len(state.restaurants), len(state.menus)) == (1, 1, 1)
    entries = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [e["replay"] for e in entries] == [False] * 12 + [True] * 12


async def test_idempotency_key_reused_on_another_endpoint_is_refused(
    run_step: Any, new_restaurant: Any, platform: PlatformClient
):
    rid, config = new_restaurant()
    await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id="job-1")
    payload = build_request(K.ONBOARDING_USER, config, {}, restaurant_id=rid)
    with pytest.raises(PermanentPlatformError) as caught:
        await platform.run_step(
            K.ONBOARDING_USER,
            payload,
            organisation_id=ORG,
            idempotency_key="job-1:code_generation",
            timeout_s=5,
        )
    assert (caught.value.status_code, caught.value.code) == (422, "IDEMPOTENCY_KEY_REUSED")


async def test_already_exists_is_success_with_the_existing_ids(
    run_step: Any, new_restaurant: Any, control: Any, sandbox_app: FastAPI
):
    rid, config = new_restaurant()
    first: dict[StepKey, dict[str, Any]] = {}
    for key in (K.ACCOUNT_REGISTRATION, K.ONBOARDING_USER, K.RESTAURANT_REGISTRATION):
        first[key] = await run_step(key, config, first, restaurant_id=rid, job_id="job-1")
    # a second job (e.g. a retry batch) registers the same restaurant again with new keys
    second: dict[StepKey, dict[str, Any]] = {}
    for key in (K.ACCOUNT_REGISTRATION, K.ONBOARDING_USER, K.RESTAURANT_REGISTRATION):
        second[key] = await run_step(key, config, second, restaurant_id=rid, job_id="job-2")
        assert second[key]["already_existed"] is True
        assert {**second[key], "already_existed": False} == first[key]

    state = sandbox_app.state.sandbox.state
    assert (len(state.accounts), len(state.onboarding_users), len(state.restaurants)) == (1, 1, 1)
    entries = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [e["replay"] for e in entries] == [False] * 3 + [True] * 3
    assert entries[3]["idempotency_key"] == "job-2:account_registration"


async def test_subdomain_taken_by_another_restaurant_is_permanent(
    run_step: Any, new_restaurant: Any
):
    async def register(rid: str, config: Any) -> dict[str, Any]:
        results = {
            K.ACCOUNT_REGISTRATION: await run_step(
                K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id=rid
            )
        }
        return await run_step(
            K.RESTAURANT_REGISTRATION, config, results, restaurant_id=rid, job_id=rid
        )

    rid, config = new_restaurant()
    await register(rid, config)
    other_id, other = new_restaurant(subdomain=config.restaurant.subdomain)
    with pytest.raises(PermanentPlatformError) as caught:
        await register(other_id, other)
    assert (caught.value.status_code, caught.value.code) == (409, "SUBDOMAIN_TAKEN")
    assert config.restaurant.subdomain in str(caught.value)


async def test_unknown_ids_are_404_permanent(run_step: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    fake = {K.RESTAURANT_REGISTRATION: {"platform_restaurant_id": "rest_nope"}}
    with pytest.raises(PermanentPlatformError) as caught:
        await run_step(K.SERVICES_CONFIGURATION, config, fake, restaurant_id=rid, job_id="j")
    assert (caught.value.status_code, caught.value.code) == (404, "NOT_FOUND")
    assert "rest_nope" in caught.value.details["message"]
    unknown_account = {K.ACCOUNT_REGISTRATION: {"account_id": "acct_nope"}}
    with pytest.raises(PermanentPlatformError, match="acct_nope"):
        await run_step(
            K.RESTAURANT_REGISTRATION, config, unknown_account, restaurant_id=rid, job_id="j"
        )
    assert (await control("GET", "/_sandbox/ledger"))["entries"] == []


async def test_validation_errors_name_the_field(run_step: Any, new_restaurant: Any):
    rid, config = new_restaurant(primary_color="red")
    with pytest.raises(PermanentPlatformError, match="primaryColor") as caught:
        await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id="j")
    assert (caught.value.status_code, caught.value.code) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("csv", "problem"),
    [
        ("category,name,price\nPizza,A,1\n", "the header must be"),
        ("category,name,price,description,tags,image_url\nPizza,A,abc,,,\n", "line 2: price"),
        ("category,name,price,description,tags,image_url\nPizza,A,-1,,,\n", "must be 0 or more"),
        ("category,name,price,description,tags,image_url\nPizza,A,1\n", "expected 6 columns"),
    ],
)
async def test_malformed_menu_csv_is_refused(
    platform: PlatformClient, csv: str, problem: str, run_all: Any, new_restaurant: Any
):
    rid, config = new_restaurant()
    results = await run_all(config, rid)
    payload = {
        "restaurantId": rid,
        "platformRestaurantId": results[K.RESTAURANT_REGISTRATION]["platform_restaurant_id"],
        "csv": csv,
    }
    with pytest.raises(PermanentPlatformError, match=problem) as caught:
        await platform.run_step(
            K.MENU_IMPORT, payload, organisation_id=ORG, idempotency_key="bad-csv", timeout_s=5
        )
    assert caught.value.status_code == 400


async def test_transient_fault_twice_then_success(run_step: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    rule = {"restaurant": rid, "step": "code_generation", "kind": "transient", "times": 2}
    await control("POST", "/_sandbox/faults", {"rules": [rule]})
    for _ in range(2):
        with pytest.raises(TransientPlatformError) as caught:
            await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id="j")
        assert caught.value.status_code == 503
    result = await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id="j")
    assert result["head_injection"]
    entries = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [(e["step"], e["replay"]) for e in entries] == [("code_generation", False)]
    assert (await control("GET", "/_sandbox/stats"))["requests"] == 3


async def test_faults_hit_only_the_named_restaurant(
    run_step: Any, new_restaurant: Any, control: Any
):
    rid, config = new_restaurant()
    other_id, other = new_restaurant()
    await control("POST", "/_sandbox/faults", {"rules": [{"restaurant": rid, "kind": "permanent"}]})
    assert await run_step(K.CODE_GENERATION, other, {}, restaurant_id=other_id, job_id="j2")
    with pytest.raises(PermanentPlatformError):
        await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id="j1")


async def test_permanent_fault(run_step: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    rule = {"restaurant": "*", "step": "account_registration", "kind": "permanent"}
    await control("POST", "/_sandbox/faults", {"rules": [rule]})
    for _ in range(2):  # no `times`: always
        with pytest.raises(PermanentPlatformError) as caught:
            await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j")
        assert (caught.value.status_code, caught.value.code) == (400, "INJECTED_PERMANENT")
    await control("DELETE", "/_sandbox/faults")
    assert await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j")
    assert len((await control("GET", "/_sandbox/ledger"))["entries"]) == 1


async def test_success_false_fault_is_a_failure_not_a_success(
    run_step: Any, new_restaurant: Any, control: Any
):
    rid, config = new_restaurant()
    await control("POST", "/_sandbox/faults", {"rules": [{"kind": "success_false", "times": 1}]})
    with pytest.raises(PermanentPlatformError) as caught:
        await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id="j")
    assert (caught.value.status_code, caught.value.code) == (200, "INJECTED_FAILURE")
    assert (await control("GET", "/_sandbox/ledger"))["entries"] == []


async def test_random_transient_faults_are_deterministic_for_a_seed(
    run_step: Any, new_restaurant: Any, control: Any
):
    rid, config = new_restaurant()

    async def outcomes() -> list[bool]:
        await control("POST", "/_sandbox/reset")
        await control("POST", "/_sandbox/faults", {"random_transient_rate": 0.5, "seed": 7})
        seen = []
        for n in range(24):
            try:
                await run_step(K.CODE_GENERATION, config, {}, restaurant_id=rid, job_id=f"j{n}")
                seen.append(True)
            except TransientPlatformError:
                seen.append(False)
        return seen

    first = await outcomes()
    assert first == await outcomes()
    assert 4 <= first.count(False) <= 20


async def test_wrong_service_key_is_401(sandbox_app: FastAPI, new_restaurant: Any):
    rid, config = new_restaurant()
    transport = httpx.ASGITransport(app=sandbox_app)
    wrong = "not-the-sandbox-key-4242"
    async with PlatformClient("http://sandbox.test", wrong, transport=transport) as client:
        with pytest.raises(PermanentPlatformError) as caught:
            await client.run_step(
                K.CODE_GENERATION,
                build_request(K.CODE_GENERATION, config, {}, restaurant_id=rid),
                organisation_id=ORG,
                idempotency_key="j:code_generation",
                timeout_s=5,
            )
    assert caught.value.status_code == 401
    assert "X-Service-Key" in str(caught.value)
    assert wrong not in str(caught.value)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
        assert (await http.get("/_sandbox/stats")).status_code == 401
        assert (
            await http.post("/_sandbox/reset", headers={"X-Service-Key": "x"})
        ).status_code == 401


async def test_account_creation_is_rate_limited(run_step: Any, new_restaurant: Any, control: Any):
    await control("PUT", "/_sandbox/config", {"account_spacing_s": 60})
    rid, config = new_restaurant()
    other_id, other = new_restaurant()
    first = await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j1")
    with pytest.raises(RateLimitedError) as caught:
        await run_step(K.ACCOUNT_REGISTRATION, other, {}, restaurant_id=other_id, job_id="j2")
    assert caught.value.status_code == 429
    assert caught.value.retry_after in (59.0, 60.0)
    # neither a replay nor an "already exists" is a creation: both pass during the spacing
    replay = await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j1")
    existing = await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j3")
    assert replay == first
    assert existing["account_id"] == first["account_id"] and existing["already_existed"]
    await control("PUT", "/_sandbox/config", {"account_spacing_s": 0})
    assert await run_step(K.ACCOUNT_REGISTRATION, other, {}, restaurant_id=other_id, job_id="j2")


async def test_ledger_excludes_refused_requests(run_step: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    await control("PUT", "/_sandbox/config", {"account_spacing_s": 60})
    await control(
        "POST", "/_sandbox/faults", {"rules": [{"step": "onboarding_user", "kind": "transient"}]}
    )
    await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="ok")
    other_id, other = new_restaurant()
    bad_id, bad = new_restaurant(secondary_color="blue")
    unknown = {K.RESTAURANT_REGISTRATION: {"platform_restaurant_id": "x"}}
    refused = [
        (K.ACCOUNT_REGISTRATION, other, {}, other_id, 429),  # rate limited
        (K.ONBOARDING_USER, config, {}, rid, 503),  # injected fault
        (K.CODE_GENERATION, bad, {}, bad_id, 400),  # validation error
        (K.PAYMENT_CONFIGURATION, config, unknown, rid, 404),  # unknown restaurant
    ]
    for key, cfg, results, restaurant, status in refused:
        with pytest.raises(PlatformError) as caught:
            await run_step(key, cfg, results, restaurant_id=restaurant, job_id="refused")
        assert caught.value.status_code == status
    entries = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [(e["step"], e["idempotency_key"]) for e in entries] == [
        ("account_registration", "ok:account_registration")
    ]
    assert (await control("GET", "/_sandbox/stats"))["requests"] == 5


async def test_image_polls_are_not_ledger_entries(run_step: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    result = await run_step(K.IMAGE_UPLOAD, config, {}, restaurant_id=rid, job_id="j")
    assert result["status"] == "completed"
    entries = (await control("GET", "/_sandbox/ledger"))["entries"]
    assert [e["step"] for e in entries] == ["image_upload"]


async def test_stats_count_restaurants_in_flight_at_the_same_time(
    run_step: Any, new_restaurant: Any, control: Any
):
    await control(
        "PUT", "/_sandbox/latency", {"default_ms": 0, "per_step": {"code_generation": 50}}
    )
    restaurants = [new_restaurant() for _ in range(3)]
    await asyncio.gather(
        *(
            run_step(K.CODE_GENERATION, cfg, {}, restaurant_id=rid, job_id=rid)
            for rid, cfg in restaurants
        )
    )
    assert await control("GET", "/_sandbox/stats") == {
        "requests": 3,
        "in_flight_restaurants": 0,
        "max_in_flight_restaurants": 3,
    }
    await control("POST", "/_sandbox/reset")
    assert await control("GET", "/_sandbox/stats") == {
        "requests": 0,
        "in_flight_restaurants": 0,
        "max_in_flight_restaurants": 0,
    }


async def test_reset_forgets_state_and_ledger(run_step: Any, new_restaurant: Any, control: Any):
    rid, config = new_restaurant()
    first = await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j")
    await control("POST", "/_sandbox/reset")
    assert (await control("GET", "/_sandbox/ledger"))["entries"] == []
    again = await run_step(K.ACCOUNT_REGISTRATION, config, {}, restaurant_id=rid, job_id="j")
    assert again["account_id"] != first["account_id"]
    assert again["already_existed"] is False


async def test_control_api_rejects_unknown_steps_and_kinds(sandbox_app: FastAPI, service_key: str):
    transport = httpx.ASGITransport(app=sandbox_app)
    headers = {"X-Service-Key": service_key}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers=headers
    ) as http:
        bad_step = {"rules": [{"step": "menu_upload", "kind": "transient"}]}
        assert (await http.post("/_sandbox/faults", json=bad_step)).status_code == 422
        bad_kind = {"rules": [{"kind": "explode"}]}
        assert (await http.post("/_sandbox/faults", json=bad_kind)).status_code == 422
        latency = {"per_step": {"nope": 5}}
        assert (await http.put("/_sandbox/latency", json=latency)).status_code == 422


# Over real HTTP: uvicorn in a thread, the client's own timeouts, SandboxControl over urllib.


async def test_over_http_a_timed_out_step_is_retried_as_a_replay(
    new_restaurant: Any, service_key: str, password: str
):
    rid, config = new_restaurant()
    with SandboxServer(service_key, account_spacing_s=0, image_processing_s=0.05) as server:
        assert server.url.startswith("http://127.0.0.1:")
        control = SandboxControl(server.url, service_key)
        control.reset()
        control.set_faults(
            [
                {
                    "restaurant": rid,
                    "step": "restaurant_registration",
                    "kind": "timeout",
                    "times": 1,
                    "delay_s": 5,
                }
            ]
        )
        job = str(uuid.uuid4())
        results: dict[StepKey, dict[str, Any]] = {}
        timeouts = 0
        async with PlatformClient(
            service_key=service_key, base_url=server.url, poll_interval_s=0.01
        ) as client:
            for spec in STEPS:
                payload = build_request(
                    spec.key, config, results, restaurant_id=rid, password=password
                )
                for _attempt in range(3):
                    try:
                        results[spec.key] = await client.run_step(
                            spec.key,
                            payload,
                            organisation_id=ORG,
                            idempotency_key=f"{job}:{spec.key}",
                            timeout_s=0.5,
                        )
                        break
                    except TransientPlatformError as exc:
                        assert exc.code == "TIMEOUT"
                        timeouts += 1
        assert timeouts == 1
        assert len(results) == 12
        assert results[K.RESTAURANT_REGISTRATION]["already_existed"] is False

        ledger = control.ledger()
        registration = [e for e in ledger if e["step"] == "restaurant_registration"]
        assert [e["replay"] for e in registration] == [False, True]
        assert sum(not e["replay"] for e in ledger) == 12
        assert len(server.app.state.sandbox.state.restaurants) == 1
        assert control.stats()["requests"] == 13  # 12 steps + the retry; polls are not counted

        with pytest.raises(SandboxControlError, match="422"):
            control.set_faults([{"kind": "explode"}])
        with pytest.raises(SandboxControlError, match="401"):
            SandboxControl(server.url, "wrong-key").stats()
