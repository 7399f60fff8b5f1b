"""CORS: browsers of the configured origins only; none by default."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from regbatch.api.rest import create_app
from regbatch.errors import ConfigurationError
from regbatch.settings import get_settings, reset_settings
from tests.integration.rest_support import bearer
from tests.settings_env import settings_env

ALLOWED = "https://ops.example.com"


@pytest.fixture()
def origins() -> Iterator[None]:
    with settings_env({"REGBATCH_CORS_ORIGINS": f"{ALLOWED}, http://localhost:3000"}):
        yield


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/registration-batches",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return dict(response.headers)


@pytest.mark.usefixtures("origins")
def test_configured_origins_are_allowed_and_others_are_not(org_id: uuid.UUID) -> None:
    with TestClient(create_app()) as client:
        allowed = _preflight(client, ALLOWED)
        assert allowed["access-control-allow-origin"] == ALLOWED
        assert "authorization" in allowed["access-control-allow-headers"].lower()
        assert "access-control-allow-origin" not in _preflight(client, "https://evil.example")
        listed = client.get("/registration-batches", headers={**bearer(org_id), "Origin": ALLOWED})
        assert listed.headers["access-control-allow-origin"] == ALLOWED
        assert "Location" in listed.headers["access-control-expose-headers"]
        refused = client.get("/registration-batches", headers={"Origin": ALLOWED})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ALLOWED


def test_no_origin_is_allowed_by_default(org_id: uuid.UUID) -> None:
    reset_settings()
    with TestClient(create_app()) as client:
        assert "access-control-allow-origin" not in _preflight(client, ALLOWED)
        listed = client.get("/registration-batches", headers={**bearer(org_id), "Origin": ALLOWED})
        assert "access-control-allow-origin" not in listed.headers


def test_a_wildcard_or_a_path_is_refused_naming_the_variable() -> None:
    for value in ("*", "https://ops.example.com/app"):
        with (
            settings_env({"REGBATCH_CORS_ORIGINS": value}),
            pytest.raises(ConfigurationError, match="REGBATCH_CORS_ORIGINS holds"),
        ):
            get_settings()
