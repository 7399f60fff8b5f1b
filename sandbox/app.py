"""The sandbox registration platform: a FastAPI app with the twelve step endpoints and /_sandbox/*.

A step request goes through: service key (401) -> an entry in the request log -> body and headers
(400) -> fault injection -> idempotency: the stored answer (a replay, or 422 for a key used on
another endpoint), or 409 IN_PROGRESS while another request holds the key, or else a claim on the
key -> the step's latency, under the claim -> the step itself (`PlatformState.perform`) -> stored
answer and ledger entry -> the claim released. What to answer is decided when the request arrives;
no answer comes sooner than the step's latency after that. Refused requests change nothing, store
nothing and leave no ledger entry. See sandbox/README.md for the contract.

There is no lock. The app runs in one event loop, so everything between two awaits happens in one
piece: looking a key up and claiming it (no await between them) cannot interleave with another
request, and `perform` (synchronous) changes the state whole. Requests with different keys
overlap, as they would on a real platform; two with one key can never both perform.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from regbatch.sandbox.faults import Fault, FaultSet, Latency
from regbatch.sandbox.schemas import ConfigIn, FaultsIn, LatencyIn
from regbatch.sandbox.state import Answer, PlatformState, Refusal, error_body
from regbatch.steps import STEPS, StepKey

# The sandbox serves the endpoints the client calls: each step's path from its row in STEPS.
STEP_ROUTES: dict[StepKey, str] = {spec.key: spec.path for spec in STEPS}
_STEP_PATTERNS = [(step, compile_path(path)[0]) for step, path in STEP_ROUTES.items()]
_FAULT_ANSWERS = {
    "transient": (503, "INJECTED_TRANSIENT", "injected transient fault; try again"),
    "permanent": (400, "INJECTED_PERMANENT", "injected permanent fault"),
    "success_false": (200, "INJECTED_FAILURE", "injected failure reported with success: false"),
}
IN_PROGRESS_RETRY_AFTER_S = 1

# The outcomes of the request log (sandbox/README.md).
PERFORMED = "performed"  # the step ran and its answer was stored (an ALREADY_EXISTS one too)
REPLAY = "replay"  # the stored answer of an earlier request with the same key
REFUSED = "refused"  # the platform said no: validation, 404, 409 SUBDOMAIN_TAKEN, 422, 429
IN_PROGRESS = "in_progress"  # 409: another request with the same key was being processed
FAULT = "fault"  # an injected transient, permanent or success_false answer
INVALID = "invalid"  # 400 before the step: body not a JSON object, no restaurantId or header
UNAUTHORIZED = "unauthorized"  # 401: missing or wrong X-Service-Key
ERROR = "error"  # 500: the sandbox itself failed (a bug)
CANCELLED = "cancelled"  # the request was cancelled before it was answered (status null)


def _now() -> str:
    """Wall-clock UTC time, ISO-8601 with microseconds (always six digits, so entries sort)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _step_of(scope: Scope) -> StepKey | None:
    """The step whose endpoint an HTTP request is for, or None for any other route."""
    if scope.get("method") != "POST":
        return None
    path = scope.get("path", "")
    return next((step for step, pattern in _STEP_PATTERNS if pattern.match(path)), None)


class _RequireServiceKey:
    """Pure ASGI middleware: every HTTP request must carry the sandbox's X-Service-Key."""

    def __init__(
        self,
        app: ASGIApp,
        service_key: str,
        on_unauthorized: Callable[[Scope], None] | None = None,
    ) -> None:
        self.app, self._key = app, service_key.encode()
        self._on_unauthorized = on_unauthorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"x-service-key", b"")
            if not hmac.compare_digest(given, self._key):
                if self._on_unauthorized is not None:
                    self._on_unauthorized(scope)
                response = _error(
                    401, "UNAUTHORIZED", "missing or wrong X-Service-Key; use the sandbox's key"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Sandbox:
    """The running sandbox: platform state, idempotency store, faults, latency, logs, stats."""

    def __init__(
        self, *, latency_ms: float, account_spacing_s: float, image_processing_s: float
    ) -> None:
        self.state = PlatformState(
            account_spacing_s=account_spacing_s, image_processing_s=image_processing_s
        )
        self._initial_latency = LatencyIn(default_ms=latency_ms)
        # Both outlive a reset: the requests counted here are still running and end themselves;
        # forgetting a claim would let a second request with the same key perform.
        self.claims: set[str] = set()  # idempotency keys of requests being performed
        self.in_flight: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        self.state.reset()
        self.faults = FaultSet()
        self.latency = Latency(self._initial_latency)
        self.answers: dict[str, tuple[StepKey, Answer]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.request_log: list[dict[str, Any]] = []
        self.requests = 0
        self.max_in_flight = len(self.in_flight)

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "in_flight_restaurants": len(self.in_flight),
            "max_in_flight_restaurants": self.max_in_flight,
        }

    def log_unauthorized(self, scope: Scope) -> None:
        """Log a step request refused for its service key; other routes are not logged."""
        step = _step_of(scope)
        if step is not None:
            key = Headers(scope=scope).get("idempotency-key") or None
            _answered(self._log_arrival(step, key), 401, UNAUTHORIZED)

    async def step(self, step: StepKey, request: Request) -> Response:
        """Answer one step request (the pipeline in the module docstring) and log it."""
        entry = self._log_arrival(step, request.headers.get("Idempotency-Key") or None)
        status: int | None = None
        outcome = CANCELLED  # unless an answer or an error says otherwise
        try:
            response, outcome = await self._step(step, request, entry)
            status = response.status_code
            return response
        except Exception:
            status, outcome = 500, ERROR
            raise
        finally:
            _answered(entry, status, outcome)

    def _log_arrival(self, step: StepKey, key: str | None) -> dict[str, Any]:
        """A new request log entry, in arrival order; the answer's fields are filled in later."""
        entry: dict[str, Any] = {
            "step": str(step),
            "restaurant": None,
            "idempotency_key": key,
            "received_at": _now(),
            "answered_at": None,
            "status": None,
            "outcome": None,
        }
        self.request_log.append(entry)
        return entry

    async def _step(
        self, step: StepKey, request: Request, entry: dict[str, Any]
    ) -> tuple[Response, str]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        restaurant = body.get("restaurantId") if isinstance(body, dict) else None
        restaurant = restaurant if isinstance(restaurant, str) and restaurant else None
        entry["restaurant"] = restaurant
        self.requests += 1
        with self._in_flight_for(restaurant):
            return await self._answer(step, request, body, restaurant)

    @contextmanager
    def _in_flight_for(self, restaurant: str | None) -> Iterator[None]:
        """Count the restaurant as in flight while its request is being answered."""
        if restaurant is None:
            yield
            return
        self.in_flight[restaurant] += 1
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
        try:
            yield
        finally:
            self.in_flight[restaurant] -= 1
            if self.in_flight[restaurant] <= 0:
                del self.in_flight[restaurant]

    async def _answer(
        self, step: StepKey, request: Request, body: Any, restaurant: str | None
    ) -> tuple[Response, str]:
        """Decide on arrival, answer after the step's latency; (the answer, its outcome)."""
        received = self.state.now()
        delay = self.latency.seconds(step)
        problem = _malformed(body, restaurant, request.headers)
        if problem is not None:
            await _pause(delay)
            return _error(400, "VALIDATION_ERROR", problem), INVALID
        assert isinstance(body, dict) and restaurant is not None  # _malformed checked both
        # Faults come before idempotency (as on a platform whose gateway fails before the
        # service sees the request), and in arrival order: the same requests meet the same faults.
        fault = self.faults.pick(restaurant, step)
        if fault is not None and fault.kind in _FAULT_ANSWERS:
            await _pause(delay)
            return _fault_answer(fault, step, restaurant), FAULT
        key = request.headers["Idempotency-Key"]
        response, outcome = await self._idempotent(
            step, request, body, restaurant, key, delay, received
        )
        if fault is not None and fault.kind == "timeout" and outcome in (PERFORMED, REPLAY):
            await _linger(request, fault.delay_s)
        return response, outcome

    async def _idempotent(
        self,
        step: StepKey,
        request: Request,
        body: dict[str, Any],
        restaurant: str,
        key: str,
        delay: float,
        received: float,
    ) -> tuple[Response, str]:
        """The stored answer, 409 IN_PROGRESS, a 429 of the rate limiter, or the step performed
        under a claim on the key."""
        # No await from this lookup to the claim in _perform: the two are one atomic piece.
        stored = self.answers.get(key)
        if stored is not None:
            await _pause(delay)
            return self._stored(step, restaurant, key, stored)
        if key in self.claims:
            await _pause(delay)
            return _in_progress(key), IN_PROGRESS
        try:
            self.state.admit(step, body, received)
        except Refusal as no:
            await _pause(delay)
            return _error(no.status, no.code, no.message, no.headers), REFUSED
        return await self._perform(step, request, body, restaurant, key, delay)

    async def _perform(
        self,
        step: StepKey,
        request: Request,
        body: dict[str, Any],
        restaurant: str,
        key: str,
        delay: float,
    ) -> tuple[Response, str]:
        """Claim the key, take the latency under the claim, perform and store; always release."""
        self.claims.add(key)
        try:
            await _pause(delay)
            try:
                answer = self.state.perform(step, body, dict(request.path_params))
            except Refusal as no:  # nothing changed, so nothing is stored: a retry may perform
                return _error(no.status, no.code, no.message, no.headers), REFUSED
            self.answers[key] = (step, answer)
            self._ledger_entry(step, restaurant, key, replay=answer.replay)
            return _response(answer), PERFORMED
        finally:
            self.claims.discard(key)

    def _stored(
        self, step: StepKey, restaurant: str, key: str, stored: tuple[StepKey, Answer]
    ) -> tuple[Response, str]:
        """A replay of the stored answer, or 422 when the key was used for another step."""
        used_for, answer = stored
        if used_for != step:
            message = f"Idempotency-Key {key!r} was used for {used_for}; use a new key for {step}"
            return _error(422, "IDEMPOTENCY_KEY_REUSED", message), REFUSED
        self._ledger_entry(step, restaurant, key, replay=True)
        return _response(answer), REPLAY

    def _ledger_entry(self, step: StepKey, restaurant: str, key: str, *, replay: bool) -> None:
        self.ledger.append(
            {
                "step": str(step),
                "restaurant": restaurant,
                "idempotency_key": key,
                "replay": replay,
                "at": _now(),
            }
        )

    def upload_status(self, menu_id: str, upload_id: str) -> Response:
        """An image upload's status poll; no faults, latency, stats or log entries."""
        # No lock: this synchronous read runs between two awaits of the one event loop, so it
        # never sees a step's change half made.
        try:
            return JSONResponse(self.state.upload_status(menu_id, upload_id))
        except Refusal as refusal:
            return _error(refusal.status, refusal.code, refusal.message)


def _answered(entry: dict[str, Any], status: int | None, outcome: str) -> None:
    entry.update(answered_at=_now(), status=status, outcome=outcome)


def _malformed(body: Any, restaurant: str | None, headers: Headers) -> str | None:
    """What makes a step request malformed before the step looks at it, or None."""
    if not isinstance(body, dict):
        return "body: must be a JSON object"
    if restaurant is None:
        return "restaurantId: Field required"
    if not headers.get("Idempotency-Key"):
        return "Idempotency-Key: header required"
    if not headers.get("X-Organisation-ID"):
        return "X-Organisation-ID: header required"
    return None


def _fault_answer(fault: Fault, step: StepKey, restaurant: str) -> JSONResponse:
    status, code, message = _FAULT_ANSWERS[fault.kind]
    return _error(status, code, f"{message} ({step}, restaurant {restaurant})")


def _in_progress(key: str) -> JSONResponse:
    seconds = IN_PROGRESS_RETRY_AFTER_S
    message = (
        f"a request with Idempotency-Key {key!r} is still being processed; retry after {seconds} s"
    )
    return _error(409, "IN_PROGRESS", message, headers={"Retry-After": str(seconds)})


def _response(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def _pause(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


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
    app.add_middleware(
        _RequireServiceKey, service_key=service_key, on_unauthorized=sandbox.log_unauthorized
    )

    for step, path in STEP_ROUTES.items():
        app.add_api_route(path, _step_endpoint(sandbox, step), methods=["POST"], name=str(step))

    @app.get("/api/menus/{menu_id}/upload-images/{upload_id}")
    async def upload_status(menu_id: str, upload_id: str) -> Response:
        return sandbox.upload_status(menu_id, upload_id)

    _add_control_routes(app, sandbox)
    return app


def _add_control_routes(app: FastAPI, sandbox: Sandbox) -> None:
    """The control API, /_sandbox/* (sandbox/README.md)."""

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

    @app.get("/_sandbox/requests")
    async def requests() -> dict[str, Any]:
        # copies: an entry in flight is completed later, after this answer was serialised
        return {"entries": [dict(entry) for entry in sandbox.request_log]}

    @app.get("/_sandbox/stats")
    async def stats() -> dict[str, int]:
        return sandbox.stats()

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, Any]:
        sandbox.reset()
        return {"success": True}


def _step_endpoint(sandbox: Sandbox, step: StepKey) -> Any:
    async def endpoint(request: Request) -> Response:
        return await sandbox.step(step, request)

    endpoint.__name__ = f"step_{step}"
    return endpoint
