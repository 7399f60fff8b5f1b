"""One row per step: endpoint, request builder and result model come from STEPS and nowhere else."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from typing import Any

import httpx
import pytest

from regbatch.config import RegistrationConfig
from regbatch.platform import PlatformClient, build_request, builders
from regbatch.platform.builders import RequestContext
from regbatch.platform.results import StepResult
from regbatch.sandbox.app import STEP_ROUTES
from regbatch.step_spec import StepSpec
from regbatch.steps import BY_KEY, STEPS, StepKey, step


def test_every_step_declares_its_endpoint_builder_and_result_model_in_its_row() -> None:
    for spec in STEPS:
        assert spec.path.startswith("/api/"), spec.key
        assert spec.build is getattr(builders, spec.key), f"{spec.key}'s builder is named after it"
        assert issubclass(spec.result_model, StepResult), spec.key
    assert len({spec.path for spec in STEPS}) == len(STEPS)


def test_a_step_row_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        StepSpec(1, StepKey.ACCOUNT_REGISTRATION)  # type: ignore[call-arg]


def test_the_sandbox_serves_the_paths_of_the_rows() -> None:
    assert {spec.key: spec.path for spec in STEPS} == STEP_ROUTES


def test_build_request_calls_the_rows_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[StepKey] = []

    def fake(context: RequestContext) -> dict[str, Any]:
        seen.append(context.step)
        return {"built": "by the row"}

    key = StepKey.SERVICES_CONFIGURATION
    monkeypatch.setitem(BY_KEY, key, replace(step(key), build=fake))
    payload = build_request(key, RegistrationConfig(), {}, restaurant_id="r-1")
    assert payload == {"restaurantId": "r-1", "built": "by the row"}
    assert seen == [key]


@pytest.mark.anyio
@pytest.mark.parametrize("spec", STEPS, ids=lambda s: s.key)
async def test_the_client_posts_to_the_rows_path_and_reads_the_rows_result_model(
    spec: StepSpec,
) -> None:
    sent: list[str] = []
    fields = {
        name: _sample(info.annotation)
        for name, info in spec.result_model.model_fields.items()
        if info.is_required()
    }

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"success": True, **fields, "status": "completed"})

    payload: dict[str, Any] = {"restaurantId": "r-1", "menuId": "menu 1"}
    async with PlatformClient(
        "http://platform", "key", transport=httpx.MockTransport(handler)
    ) as c:
        result = await c.run_step(
            spec.key, payload, organisation_id="org", idempotency_key="j:k", timeout_s=5
        )
    assert sent == [spec.path.format(menu_id="menu%201")]
    assert set(result) == set(spec.result_model.model_fields)


def _sample(annotation: Any) -> Any:
    """A value of the annotated type good enough for a result model."""
    text = str(annotation)
    if annotation is str:
        return "x"
    if annotation is int:
        return 1
    if annotation is bool:
        return True
    if "dict" in text:
        return {}
    if "list" in text:
        return []
    return {"ordering": "https://o", "admin": "https://a"}  # RestaurantUrls


@pytest.mark.parametrize(
    "module",
    [
        "regbatch.steps",
        "regbatch.step_spec",
        "regbatch.config",
        "regbatch.platform",
        "regbatch.platform.builders",
        "regbatch.platform.requests",
        "regbatch.platform.results",
        "regbatch.platform.answers",
        "regbatch.platform.client",
        "regbatch.sandbox.app",
    ],
)
def test_each_module_imports_first_without_a_cycle(module: str) -> None:
    # A fresh interpreter: an import cycle shows up only when a module is the first imported.
    code = f"import {module}; import regbatch.steps; assert len(regbatch.steps.STEPS) == 12"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_step_table_imports_no_http_client() -> None:
    code = (
        "import sys, regbatch.steps; "
        "assert not {'httpx', 'regbatch.platform.client'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
