"""The twelve registration steps as Prefect tasks.

Each task is a thin wrapper around `execute_step(job_id, key)`: record the attempt, build the
request from the job's configuration and its dependencies' results (read from the database), call
the platform, record the outcome. Prefect retries transient failures with the step's policy; the
platform's Retry-After (429) is waited out inside the attempt, up to the step's timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from functools import lru_cache
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger

from regbatch import passwords
from regbatch.config import RegistrationConfig
from regbatch.errors import RateLimitedError, TransientPlatformError
from regbatch.platform import build_request
from regbatch.settings import get_settings
from regbatch.steps import RetryPolicy, StepKey, step
from services import execution
from tasks.account_limit import account_creation_slot
from tasks.platform_client import platform_client

# The Prefect task may run a little longer than the step's own timeout: the HTTP client gives up
# first and reports a clean, retryable timeout.
TASK_TIMEOUT_MARGIN_S = 30.0


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
) -> dict[str, Any]:
    """One attempt: the platform call, with 429s waited out until the step's timeout is spent."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return await platform_client().run_step(
                key,
                payload,
                organisation_id=organisation_id,
                idempotency_key=idempotency_key,
                timeout_s=max(remaining, 0.001),
            )
        except RateLimitedError as exc:
            if exc.retry_after >= deadline - time.monotonic():
                raise
            get_run_logger().info(
                "%s: platform rate limit, waiting %.1f s as asked (Retry-After)",
                step(key).label,
                exc.retry_after,
            )
            await asyncio.sleep(exc.retry_after)


def step_timeout(key: StepKey, config: RegistrationConfig) -> float:
    """The step's timeout: its graph default (scaled by settings) unless the config overrides."""
    policy = config.policies.get(key)
    if policy is not None and policy.timeout_s is not None:
        return policy.timeout_s
    return step(key).timeout_s * get_settings().step_timeout_scale


async def execute_step(job_id: uuid.UUID, key: StepKey) -> dict[str, Any]:
    """Run one attempt of a step and record it; returns the step's result."""
    attempt, most = _attempt()
    inputs = await execution.start_attempt(job_id, key)
    password = (
        passwords.decrypt(inputs.encrypted_password)
        if key == StepKey.ACCOUNT_REGISTRATION and inputs.encrypted_password
        else None
    )
    try:
        payload = build_request(
            key,
            inputs.config,
            inputs.results,
            restaurant_id=str(inputs.restaurant_id),
            password=password,
        )
        timeout_s = step_timeout(key, inputs.config)
        if key == StepKey.ACCOUNT_REGISTRATION:
            async with account_creation_slot():
                result = await _call_platform(
                    key, payload, str(inputs.organisation_id), inputs.idempotency_key, timeout_s
                )
        else:
            result = await _call_platform(
                key, payload, str(inputs.organisation_id), inputs.idempotency_key, timeout_s
            )
    except TransientPlatformError as exc:
        if attempt < most:
            await execution.record_retrying(job_id, key, exc)
            get_run_logger().warning(
                "%s attempt %d of %d failed, will retry: %s", step(key).label, attempt, most, exc
            )
        else:
            await execution.record_failed(job_id, key, exc)
        raise
    except BaseException as exc:
        await execution.record_failed(job_id, key, exc)
        raise
    await execution.record_completed(job_id, key, result)
    return result


def _retry_transient(task: Task[Any, Any], task_run: Any, state: Any) -> bool:
    """Retry only transient platform failures (and Prefect's own task timeout)."""
    try:
        state.result(_sync=True)  # not plain state.result(): async tasks return a coroutine
    except (TransientPlatformError, TimeoutError):
        return True
    except BaseException:
        return False
    return False


def _delays(policy: RetryPolicy) -> list[float]:
    scale = get_settings().retry_delay_scale
    return [policy.delay_before(n) * scale for n in range(1, policy.retries + 1)] or [0.0]


@lru_cache(maxsize=256)
def _build(
    key: StepKey, retries: int, delays: tuple[float, ...], timeout_s: float
) -> Task[Any, Any]:
    spec = step(key)

    async def run(job_id: uuid.UUID) -> dict[str, Any]:
        return await execute_step(job_id, key)

    run.__name__ = f"step_{key}"
    run.__doc__ = f"Step {spec.number}: {spec.does}."
    decorate = task(
        name=spec.label,
        task_run_name=spec.label,
        retries=retries,
        retry_delay_seconds=list(delays),
        retry_jitter_factor=None,
        retry_condition_fn=_retry_transient,
        timeout_seconds=timeout_s + TASK_TIMEOUT_MARGIN_S,
        cache_policy=NO_CACHE,
        persist_result=False,
    )
    return decorate(run)


def step_task(key: StepKey, config: RegistrationConfig) -> Task[Any, Any]:
    """The Prefect task for step `key` with this job's retry policy and timeout."""
    spec = step(key)
    policy = spec.retry
    override = config.policies.get(key)
    if override is not None and override.retries is not None:
        policy = RetryPolicy(override.retries, tuple(override.retry_delays_s or policy.delays_s))
    elif override is not None and override.retry_delays_s is not None:
        policy = RetryPolicy(policy.retries, tuple(override.retry_delays_s))
    return _build(key, policy.retries, tuple(_delays(policy)), step_timeout(key, config))
