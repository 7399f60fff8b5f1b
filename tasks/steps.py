"""The registration steps as Prefect tasks: the twelve built-in ones and plugins' extra steps.

Each task is a thin wrapper around `execute_step(lease, job_id, key, timeout_s)`: record the
attempt (under the runner's lease), build the request from the job's configuration and its
dependencies' results (read from the database), call the platform, record the outcome. A step
whose row names a plugin's handler runs that handler instead (with a `StepContext`), under the
same rules. What an error means is decided in one place, `regbatch.step_outcomes.after_error`,
which Prefect's retry condition follows too. The platform's Retry-After (429) is waited out
inside the attempt, up to the step's timeout. Account registration first waits for the global
account-creation turn, outside its attempt: queueing for the turn is not part of any attempt or
timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.states import Cancelled, State

from regbatch import passwords
from regbatch.config import RegistrationConfig
from regbatch.errors import (
    BatchStoppingError,
    PlatformError,
    PluginError,
    RateLimitedError,
    StepCodeError,
    TransientPlatformError,
)
from regbatch.handlers import (
    ENTRY_POINT_GROUP,
    Handler,
    RestaurantInfo,
    StepContext,
    target,
)
from regbatch.lease import Lease
from regbatch.ledger import Completed, Failed, Retrying, StepInputs
from regbatch.platform import build_request
from regbatch.plugins import current_registry
from regbatch.runner.account_turn import account_creation_turn, spacing_s
from regbatch.runner.ledger import ledger
from regbatch.runner.logs import run_logger
from regbatch.runner.platform import platform_client
from regbatch.runner.prefect_runs import untagged
from regbatch.settings import get_settings
from regbatch.step_outcomes import AfterError, Ended, StepEnd, after_error
from regbatch.steps import GraphStep, RetryPolicy, StepKey, is_built_in, step


def _attempt() -> tuple[int, int]:
    """(this attempt's number, the most attempts Prefect will make) for the running task."""
    context = TaskRunContext.get()
    if context is None:
        return 1, 1
    return context.task_run.run_count, context.task.retries + 1


async def _call_platform(
    key: StepKey,
    payload: dict[str, Any],
    organisation_id: str,
    idempotency_key: str,
    timeout_s: float,
    on_answer: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One attempt: the platform call, with 429s waited out until the step's timeout is spent.

    `on_answer` is called as soon as each request has been answered (or has failed).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            try:
                return await platform_client().run_step(
                    key,
                    payload,
                    organisation_id=organisation_id,
                    idempotency_key=idempotency_key,
                    timeout_s=max(remaining, 0.001),
                )
            finally:
                if on_answer is not None:
                    on_answer()
        except RateLimitedError as exc:
            if exc.retry_after >= deadline - time.monotonic():
                raise
            run_logger().info(
                "%s: platform asks to wait %.1f s (%s); waiting, then asking again",
                step(key).label,
                exc.retry_after,
                exc.code or "429",
            )
            await asyncio.sleep(exc.retry_after)


def _label(key: str) -> str:
    return step(key).label if is_built_in(key) else key


def step_timeout(spec: GraphStep, config: RegistrationConfig) -> float:
    """The step's timeout: its graph default (scaled by settings) unless the config overrides."""
    policy = config.policies.get(spec.key) if isinstance(spec.key, StepKey) else None
    if policy is not None and policy.timeout_s is not None:
        return policy.timeout_s
    return spec.timeout_s * get_settings().step_timeout_scale


async def execute_step(
    lease: Lease,
    job_id: uuid.UUID,
    key: str,
    timeout_s: float,
    attempt: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run one attempt of a step and record its outcome; returns the step's result.

    `attempt` is (this attempt, the most attempts) when not running as a Prefect task run.
    """
    number, most = attempt or _attempt()
    if key != StepKey.ACCOUNT_REGISTRATION or not spacing_s():
        return await _attempt_step(lease, job_id, key, timeout_s, number, most)
    run_logger().info("%s: waiting for the account-creation turn", _label(key))
    async with account_creation_turn() as turn:
        return await _attempt_step(lease, job_id, key, timeout_s, number, most, turn.note_answered)


async def _attempt_step(
    lease: Lease,
    job_id: uuid.UUID,
    key: str,
    timeout_s: float,
    attempt: int,
    most: int,
    on_answer: Callable[[], None] | None = None,
) -> dict[str, Any]:
    # Refused, with nothing recorded, when the lease is gone or a pause or cancel was asked.
    inputs = await ledger().start_attempt(lease, job_id, key)
    try:
        result = await _perform(key, inputs, timeout_s, on_answer)
    except (PlatformError, StepCodeError) as exc:
        if after_error(exc, attempt, most) is AfterError.RETRY:
            await ledger().record_outcome(lease, job_id, key, Retrying(exc))
            run_logger().warning(
                "%s attempt %d of %d failed, will retry: %s", _label(key), attempt, most, exc
            )
        else:
            cause = exc.__cause__ if isinstance(exc, StepCodeError) else None
            await ledger().record_outcome(lease, job_id, key, Failed(cause or exc))
        raise
    await ledger().record_outcome(lease, job_id, key, Completed(result))
    return result


async def _perform(
    key: str,
    inputs: StepInputs,
    timeout_s: float,
    on_answer: Callable[[], None] | None,
) -> dict[str, Any]:
    """Run the step: its plugin's handler, or the built-in request to the platform. A fault in
    this code (not an answer of the platform) is a StepCodeError."""
    handler = _handler(key, inputs)
    try:
        if handler is not None:
            return await run_handler(handler, key, inputs, timeout_s, on_answer)
        return await _built_in(StepKey(key), inputs, timeout_s, on_answer)
    except PlatformError:
        raise
    except Exception as exc:
        run_logger().exception("%s: the step's own code failed", _label(key))
        raise StepCodeError(f"{_label(key)}: {type(exc).__name__}") from exc


def _handler(key: str, inputs: StepInputs) -> Handler | None:
    """The plugin function the step row names; PluginError (not an outcome: the step is left
    for a process that has the plugin) when this process lacks it."""
    if inputs.handler is None:
        return None
    handler = current_registry().resolve_target(inputs.handler)
    if handler is None:
        raise PluginError(
            f"step {key} of restaurant {inputs.restaurant_id} is run by {inputs.handler}, "
            "which this process does not have; install the plugin that provides it here "
            f"(entry point group {ENTRY_POINT_GROUP}), then run the batch again"
        )
    return handler


async def _built_in(
    key: StepKey,
    inputs: StepInputs,
    timeout_s: float,
    on_answer: Callable[[], None] | None,
) -> dict[str, Any]:
    """The built-in step: build the request and call the platform."""
    password = (
        passwords.decrypt(inputs.encrypted_password)
        if key == StepKey.ACCOUNT_REGISTRATION and inputs.encrypted_password
        else None
    )
    payload = build_request(
        key,
        inputs.config,
        inputs.results,
        restaurant_id=str(inputs.restaurant_id),
        password=password,
    )
    return await _call_platform(
        key,
        payload,
        str(inputs.organisation_id),
        inputs.idempotency_key,
        timeout_s,
        on_answer,
    )


async def run_handler(
    handler: Handler,
    key: str,
    inputs: StepInputs,
    timeout_s: float,
    on_answer: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run a plugin's handler within the step's timeout; its result must be a JSON object."""
    deadline = time.monotonic() + timeout_s

    async def call_default() -> dict[str, Any]:
        remaining = max(deadline - time.monotonic(), 0.001)
        return await _built_in(StepKey(key), inputs, remaining, on_answer)

    encrypted = inputs.encrypted_password
    context = StepContext(
        restaurant=RestaurantInfo.from_config(str(inputs.restaurant_id), inputs.config),
        step=str(key),
        idempotency_key=inputs.idempotency_key,
        outputs=MappingProxyType(inputs.results),
        # a copy: the job's configuration is cached for its later steps
        config=inputs.config.model_copy(deep=True),
        logger=run_logger(),
        attempt=inputs.attempt,
        _default=call_default if is_built_in(key) else None,
        _password=(lambda: passwords.decrypt(encrypted)) if encrypted else None,
    )
    try:
        async with asyncio.timeout(timeout_s) as limit:
            result = await handler(context)
    except TimeoutError:
        if not limit.expired():  # the handler's own TimeoutError: a fault of its code
            raise
        raise TransientPlatformError(
            f"{_label(key)}: handler {target(handler)} did not finish within {timeout_s:g} s; "
            "it is retried with the same idempotency key"
        ) from None
    return _json_object(result, key, handler)


def _json_object(result: Any, key: str, handler: Handler) -> dict[str, Any]:
    """The handler's result as stored: a JSON object, or TypeError naming the handler."""
    if not isinstance(result, dict):
        raise TypeError(
            f"handler {target(handler)} of step {key} returned {type(result).__name__}, "
            "not a dict; return a JSON-serialisable dict"
        )
    try:
        stored: dict[str, Any] = json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"handler {target(handler)} of step {key} returned a dict that is not "
            f"JSON-serialisable ({exc}); return plain str/int/float/bool/list/dict values"
        ) from None
    return stored


def _retry_transient(task: Task[Any, Any], task_run: Any, state: Any) -> bool:
    """Prefect retries exactly when `after_error` says RETRY (the ledger recorded `retrying`)."""
    try:
        state.result(_sync=True)  # not plain state.result(): async tasks return a coroutine
    except BaseException as exc:
        return after_error(exc, task_run.run_count, task.retries + 1) is AfterError.RETRY
    return False


def _delays(policy: RetryPolicy) -> list[float]:
    scale = get_settings().retry_delay_scale
    return [policy.delay_before(n) * scale for n in range(1, policy.retries + 1)] or [0.0]


@lru_cache(maxsize=256)
def _build(
    key: str, label: str, doc: str, retries: int, delays: tuple[float, ...], timeout_s: float
) -> Task[Any, Any]:
    async def run(lease: Lease, job_id: uuid.UUID) -> Any:
        try:
            return await execute_step(lease, job_id, key, timeout_s)
        except BatchStoppingError as exc:
            # Not started: a pause or cancel was asked first. Not a failure of the step.
            return Cancelled(message=str(exc))

    run.__name__ = f"step_{key}"
    run.__doc__ = doc
    # No Prefect timeout: the platform call has the step's own deadline, the ledger is bounded by
    # the lease, and the account-creation queue must not count against any timeout.
    decorate = task(
        name=label,
        task_run_name=label,
        retries=retries,
        retry_delay_seconds=list(delays),
        retry_jitter_factor=None,
        retry_condition_fn=_retry_transient,
        cache_policy=NO_CACHE,
        persist_result=False,
    )
    return decorate(run)


def step_task(spec: GraphStep, config: RegistrationConfig) -> Task[Any, Any]:
    """The Prefect task for step `spec` with this job's retry policy and timeout."""
    policy = spec.retry
    override = config.policies.get(spec.key) if isinstance(spec.key, StepKey) else None
    if override is not None and override.retries is not None:
        policy = RetryPolicy(override.retries, tuple(override.retry_delays_s or policy.delays_s))
    elif override is not None and override.retry_delays_s is not None:
        policy = RetryPolicy(policy.retries, tuple(override.retry_delays_s))
    doc = f"Step {spec.number}: {spec.does}."
    delays = tuple(_delays(policy))
    return _build(spec.key, spec.label, doc, policy.retries, delays, step_timeout(spec, config))


async def state_error(state: State[Any]) -> BaseException | None:
    """The exception a finished task or flow run's state carries, if it failed or crashed."""
    if not (state.is_failed() or state.is_crashed()):
        return None
    error = await state.aresult(raise_on_failure=False)
    return error if isinstance(error, BaseException) else None


async def run_step_task(
    spec: GraphStep, config: RegistrationConfig, lease: Lease, job_id: uuid.UUID
) -> StepEnd:
    """Run step `spec`'s Prefect task (with its retries) and say how it ended."""
    with untagged():
        state = await step_task(spec, config)(lease, job_id, return_state=True)
    if state.is_completed():
        return StepEnd(Ended.COMPLETED, result=await state.aresult())
    if state.is_cancelled():  # refused before it started: a pause or cancel was asked
        return StepEnd(Ended.NOT_STARTED)
    error = await state_error(state)
    return StepEnd.from_error(error or RuntimeError(f"{state.type}: {state.message}"))
