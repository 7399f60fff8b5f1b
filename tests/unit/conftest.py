"""Shared fixtures of the unit tests: a restaurant configuration factory and the sandbox in-process.

The sandbox app runs in the test's event loop through `httpx.ASGITransport`; `platform` is the real
PlatformClient over that transport, `control` calls the sandbox's /_sandbox/* API the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from regbatch.config import RegistrationConfig, build_config
from regbatch.platform import PlatformClient, build_request
from regbatch.sandbox.app import create_app
from regbatch.steps import STEPS, StepKey

SERVICE_KEY = "unit-test-service-key-5f1c9a"
ORG = "org-unit-tests"
PASSWORD = "Owner-Pa55word-never-shown"

MENU: dict[str, Any] = {
    "categories": [
        {
            "name": "Pizza",
            "items": [
                {
                    "name": "Margherita",
                    "price": "18.50",
                    "description": "Tomato, mozzarella, basil",
                    "tags": ["vegetarian"],
                    "image_url": "https://img.example.com/margherita.jpg",
                    "option_sets": ["Size"],
                },
                {
                    "name": "Pepperoni",
                    "price": "21",
                    "tags": ["spicy", "bestseller"],
                    "image_url": "https://img.example.com/pepperoni.png",
                    "option_sets": ["Size"],
                },
            ],
        },
        {"name": "Drinks", "items": [{"name": "Lemonade", "price": "4.5"}]},
    ],
    "option_sets": [
        {
            "name": "Size",
            "required": True,
            "min_choices": 1,
            "max_choices": 1,
            "options": [{"name": "Regular"}, {"name": "Large", "price": "4"}],
        }
    ],
}


def restaurant_record(suffix: str | None = None) -> dict[str, Any]:
    """A complete restaurant row with unique email and subdomain."""
    suffix = suffix or uuid.uuid4().hex[:8]
    return {
        "id": f"rest-{suffix}",
        "name": f"Pizza Palace {suffix}",
        "contact_name": "Mario Rossi",
        "email": f"owner-{suffix}@example.com",
        "phone": "+64 9 555 0100",
        "address": "1 Queen Street",
        "city": "Auckland",
        "opening_hours": {"mon": [{"open": "11:00", "close": "21:00"}]},
        "cuisine": "pizza",
        "theme": "dark",
        "primary_color": "#C0392B",
        "secondary_color": "#2C3E50",
        "logo_url": "https://img.example.com/logo.png",
        "subdomain": f"pizza-palace-{suffix}",
        "menu": MENU,
    }


def make_config(
    record: dict[str, Any] | None = None, override: dict[str, Any] | None = None
) -> RegistrationConfig:
    """Every step on: new account, onboarding user and sync, menu with images, sets and tags."""
    base = {"onboarding": {"create_user": True, "sync": True}}
    return build_config(record or restaurant_record(), base, override)


Factory = Callable[..., tuple[str, RegistrationConfig]]


@pytest.fixture
def new_restaurant() -> Factory:
    """`new_restaurant(override=None, **record_changes)` -> (restaurant id, its configuration)."""

    def make(
        override: dict[str, Any] | None = None, **changes: Any
    ) -> tuple[str, RegistrationConfig]:
        record = {**restaurant_record(), **changes}
        return record["id"], make_config(record, override)

    return make


@pytest.fixture
def service_key() -> str:
    return SERVICE_KEY


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sandbox_app() -> FastAPI:
    return create_app(SERVICE_KEY, account_spacing_s=0, image_processing_s=0.05)


@pytest.fixture
async def platform(sandbox_app: FastAPI) -> AsyncIterator[PlatformClient]:
    transport = httpx.ASGITransport(app=sandbox_app)
    async with PlatformClient(
        "http://sandbox.test", SERVICE_KEY, transport=transport, poll_interval_s=0.01
    ) as client:
        yield client


Control = Callable[..., Awaitable[Any]]


@pytest.fixture
async def control(sandbox_app: FastAPI) -> AsyncIterator[Control]:
    """`await control("GET", "/_sandbox/ledger")` -> the decoded JSON answer (asserts 2xx)."""
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.test", headers={"X-Service-Key": SERVICE_KEY}
    ) as http:

        async def call(method: str, path: str, body: Any = None) -> Any:
            response = await http.request(method, path, json=body)
            assert response.is_success, response.text
            return response.json()

        yield call


StepRunner = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def run_step(platform: PlatformClient) -> StepRunner:
    """Build a step's request from config + results and run it, as the step tasks will."""

    async def run(
        key: StepKey,
        config: RegistrationConfig,
        results: dict[StepKey, dict[str, Any]],
        *,
        restaurant_id: str,
        job_id: str,
        timeout_s: float = 5.0,
    ) -> dict[str, Any]:
        payload = build_request(
            key, config, results, restaurant_id=restaurant_id, password=PASSWORD
        )
        return await platform.run_step(
            key,
            payload,
            organisation_id=ORG,
            idempotency_key=f"{job_id}:{key}",
            timeout_s=timeout_s,
        )

    return run


@pytest.fixture
def run_all(run_step: StepRunner) -> Callable[..., Awaitable[dict[StepKey, dict[str, Any]]]]:
    """Run the twelve steps of one restaurant in graph order; the results by step."""

    async def run(
        config: RegistrationConfig, restaurant_id: str, job_id: str | None = None
    ) -> dict[StepKey, dict[str, Any]]:
        job_id = job_id or str(uuid.uuid4())
        results: dict[StepKey, dict[str, Any]] = {}
        for spec in STEPS:
            results[spec.key] = await run_step(
                spec.key, config, results, restaurant_id=restaurant_id, job_id=job_id
            )
        return results

    return run
