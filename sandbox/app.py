"""The sandbox registration platform: a FastAPI app with the twelve step endpoints and /_sandbox/*.

A step request goes through: service key (401) -> latency -> fault injection -> idempotency
(replay, or 422 for a key reused on another endpoint) -> validation and the step itself
(`PlatformState`) -> stored answer and ledger entry. Refused requests change nothing, store
nothing and leave no ledger entry. See sandbox/README.md for the contract.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from regbatch.platform.endpoints import STEP_PATHS
from regbatch.steps import StepKey
from sandbox.faults import FaultSet, Latency
from sandbox.schemas import ConfigIn, FaultsIn, LatencyIn
from sandbox.state import Answer, PlatformState, Refusal, error_body

STEP_ROUTES = STEP_PATHS  # the sandbox serves the contract the client calls
_FAULT_ANSWERS = {
    "transient": (503, "INJECTED_TRANSIENT", "injected transient fault; try again"),
    "permanent": (400, "INJECTED_PERMANENT", "injected permanent fault"),
    "success_false": (200, "INJECTED_FAILURE", "injected failure reported with success: false"),
}


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


class _RequireServiceKey:
    """Pure ASGI middleware: every HTTP request must carry the sandbox's X-Service-Key."""

    def __init__(self, app: ASGIApp, service_key: str) -> None:
        self.app, self._key = app, service_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"x-service-key", b"")
            if not hmac.compare_digest(given, self._key):
                response = _error(
                    401, "UNAUTHORIZED", "missing or wrong X-Service-Key; use the sandbox's key"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Sandbox:
    """The running sandbox: platform state, idempotency store, faults, latency, ledger, stats."""

    def __init__(
        self, *, latency_ms: float, account_spacing_s: float, image_processing_s: float
    ) -> None:
        self.state = PlatformState(
            account_spacing_s=account_spacing_s, image_processing_s=image_processing_s
        )
        self._initial_latency = LatencyIn(default_ms=latency_ms)
        self.lock = asyncio.Lock()
        self.in_flight: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        self.state.reset()
        self.faults = FaultSet()
        self.latency = Latency(self._initial_latency)
        self.answers: dict[str, tuple[StepKey, Answer]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.requests = 0
        self.max_in_flight = len(self.in_flight)

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "in_flight_restaurants": len(self.in_flight),
            "max_in_flight_restaurants": self.max_in_flight,
        }

    async def step(self, step: StepKey, request: Request) -> Response:
        """Answer one step request (the whole pipeline in the module docstring)."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        restaurant = body.get("restaurantId") if isinstance(body, dict) else None
        restaurant = restaurant if isinstance(restaurant, str) and restaurant else None
        self.requests += 1
        if restaurant:
            self.in_flight[restaurant] += 1
            self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        try:
            return await self._step(step, request, body, restaurant)
        finally:
            if restaurant:
                self.in_flight[restaurant] -= 1
                if self.in_flight[restaurant] <= 0:
                    del self.in_flight[restaurant]

    async def _step(
        self, step: StepKey, request: Request, body: Any, restaurant: str | None
    ) -> Response:
        delay = self.latency.seconds(step)
        if delay > 0:
            await asyncio.sleep(delay)
        if not isinstance(body, dict):
            return _error(400, "VALIDATION_ERROR", "body: must be a JSON object")
        if restaurant is None:
            return _error(400, "VALIDATION_ERROR", "restaurantId: Field required")
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return _error(400, "VALIDATION_ERROR", "Idempotency-Key: header required")
        if not request.headers.get("X-Organisation-ID"):
            return _error(400, "VALIDATION_ERROR", "X-Organisation-ID: header required")

        fault = self.faults.pick(restaurant, step)
        if fault is not None and fault.kind in _FAULT_ANSWERS:
            status, code, message = _FAULT_ANSWERS[fault.kind]
            return _error(status, code, f"{message} ({step}, restaurant {restaurant})")

        async with self.lock:
            stored = self.answers.get(key)
            if stored is not None and stored[0] != step:
                return _error(
                    422,
                    "IDEMPOTENCY_KEY_REUSED",
                    f"Idempotency-Key {key!r} was used for {stored[0]}; use a new key for {step}",
                )
            if stored is not None:
                answer, replay = stored[1], True
            else:
                try:
                    answer = self.state.perform(step, body, dict(request.path_params))
                except Refusal as refusal:
                    return _error(refusal.status, refusal.code, refusal.message, refusal.headers)
                self.answers[key] = (step, answer)
                replay = answer.replay
            self.ledger.append(
                {
                    "step": str(step),
                    "restaurant": restaurant,
                    "idempotency_key": key,
                    "replay": replay,
                    "at": datetime.now(UTC).isoformat(),
                }
            )
        if fault is not None and fault.kind == "timeout":
            await _linger(request, fault.delay_s)
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    async def upload_status(self, menu_id: str, upload_id: str) -> Response:
        async with self.lock:
            try:
                return JSONResponse(self.state.upload_status(menu_id, upload_id))
            except Refusal as refusal:
                return _error(refusal.status, refusal.code, refusal.message)


async def _linger(request: Request, seconds: float) -> None:
    """Hold the answer back `seconds`, or until the client has gone (it gave up waiting)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(0.05, left))
        if await request.is_disconnected():
            return


def create_app(
    service_key: str,
    *,
    latency_ms: float = 0,
    account_spacing_s: float = 60.0,
    image_processing_s: float = 0.2,
) -> FastAPI:
    """The sandbox platform as an ASGI app; every request needs `X-Service-Key: service_key`."""
    if not service_key:
        raise ValueError("the sandbox needs a non-empty service key")
    sandbox = Sandbox(
        latency_ms=latency_ms,
        account_spacing_s=account_spacing_s,
        image_processing_s=image_processing_s,
    )
    app = FastAPI(title="regbatch platform sandbox", docs_url=None, redoc_url=None)
    app.state.sandbox = sandbox
    app.add_middleware(_RequireServiceKey, service_key=service_key)

    for step, path in STEP_ROUTES.items():
        app.add_api_route(path, _step_endpoint(sandbox, step), methods=["POST"], name=str(step))

    @app.get("/api/menus/{menu_id}/upload-images/{upload_id}")
    async def upload_status(menu_id: str, upload_id: str) -> Response:
        return await sandbox.upload_status(menu_id, upload_id)

    @app.post("/_sandbox/faults")
    async def set_faults(spec: FaultsIn) -> dict[str, Any]:
        sandbox.faults = FaultSet(spec)
        return {"success": True, "rules": len(spec.rules)}

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, Any]:
        sandbox.faults = FaultSet()
        return {"success": True}

    @app.put("/_sandbox/latency")
    async def set_latency(spec: LatencyIn) -> dict[str, Any]:
        sandbox.latency = Latency(spec)
        return {"success": True, **spec.model_dump()}

    @app.put("/_sandbox/config")
    async def set_config(spec: ConfigIn) -> dict[str, Any]:
        state = sandbox.state
        if spec.account_spacing_s is not None:
            state.account_spacing_s = spec.account_spacing_s
        if spec.image_processing_s is not None:
            state.image_processing_s = spec.image_processing_s
        return {
            "success": True,
            "account_spacing_s": state.account_spacing_s,
            "image_processing_s": state.image_processing_s,
        }

    @app.get("/_sandbox/ledger")
    async def ledger() -> dict[str, Any]:
        return {"entries": list(sandbox.ledger)}

    @app.get("/_sandbox/stats")
    async def stats() -> dict[str, int]:
        return sandbox.stats()

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, Any]:
        async with sandbox.lock:
            sandbox.reset()
        return {"success": True}

    return app


def _step_endpoint(sandbox: Sandbox, step: StepKey) -> Any:
    async def endpoint(request: Request) -> Response:
        return await sandbox.step(step, request)

    endpoint.__name__ = f"step_{step}"
    return endpoint
