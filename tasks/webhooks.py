"""Webhook deliveries as Prefect task runs: one event to one subscription, retried by Prefect.

Each run of `deliver_webhook` is one attempt: it signs the body afresh, POSTs it with the
WebhookClient, logs the attempt in the batch's operation log, and raises a TransientWebhookError
or a PermanentWebhookError unless the receiver answered 2xx. Prefect retries only the transient
ones (`_only_transient`), REGBATCH_WEBHOOK_ATTEMPTS attempts in all, waiting
REGBATCH_WEBHOOK_BASE_DELAY_SECONDS, then twice as long each time.

`notify_batch_outcome(batch_id)` is the batch flow's entry: every matching subscription at once,
and it never raises. Synchronous callers (the interfaces, the flow's cancellation hook) use
`deliver_batch_event`, `announce_batch_outcome` and `deliver_to_subscription`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings
from prefect.states import State
from prefect.tasks import exponential_backoff
from prefect.utilities.asyncutils import run_coro_as_sync

from regbatch.services.webhooks import (
    TIMEOUT_S,
    DeliveryPolicy,
    DeliveryResult,
    Target,
    WebhookDelivery,
    delivery_policy,
    load_target,
    log_attempt,
    plan_batch_event,
    plan_test_delivery,
)
from regbatch.settings import get_settings
from regbatch.tasks.webhook_transport import GuardedTransport, Resolver
from regbatch.webhook_targets import TargetRefusedError, resolve
from regbatch.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    PermanentWebhookError,
    TransientWebhookError,
    WebhookDeliveryError,
    WebhookEvent,
    is_transient_status,
    signature_header,
)

USER_AGENT = "regbatch-webhooks/1"
logger = logging.getLogger(__name__)


# --- the HTTP client -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How a receiver answered one POST: `error` is None exactly when it answered 2xx."""

    status_code: int | None
    error: str | None = None
    transient: bool = False
    """Whether another attempt may go better (only meaningful with an error)."""


class WebhookClient:
    """POSTs webhook bodies over one httpx.AsyncClient, with explicit timeouts; never redirected,
    and only to addresses checked after resolution (GuardedTransport).

    `allow_private` defaults to REGBATCH_WEBHOOK_ALLOW_PRIVATE; `transport` (what connects) and
    `resolver` (what resolves names) are the test seams, both behind the guard.
    """

    def __init__(
        self,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_private: bool | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        self._timeout_s = timeout_s
        if allow_private is None:
            allow_private = get_settings().webhook_allow_private
        guarded = GuardedTransport(allow_private=allow_private, inner=transport, resolver=resolver)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            # A redirect is the receiver's answer, not a success: following it would re-send
            # the signed body somewhere its subscriber never named.
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            transport=guarded,
        )

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float | None = None
    ) -> Answer:
        """POST `body` to `url`; connection errors and timeouts are answers too, never raised."""
        seconds = self._timeout_s if timeout_s is None else timeout_s
        try:
            async with self._http.stream(
                "POST", url, content=body, headers=dict(headers), timeout=seconds
            ) as response:
                # The status is the whole answer: the body, whatever its size, is never read.
                return status_answer(response.status_code, response.reason_phrase)
        except TargetRefusedError as exc:
            return Answer(None, f"refused: {exc}")
        except httpx.TimeoutException:
            return Answer(None, f"timed out after {seconds:g} s", transient=True)
        except httpx.UnsupportedProtocol as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            return Answer(None, f"connection failed: {exc or type(exc).__name__}", transient=True)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}")


def status_answer(status_code: int, reason: str = "") -> Answer:
    """The Answer a receiver's status means: 2xx delivered, else a transient or permanent error."""
    if 200 <= status_code < 300:
        return Answer(status_code)
    error = f"HTTP {status_code} {reason}".strip()
    return Answer(status_code, error, transient=is_transient_status(status_code))


# One client per delivery round, shared by its concurrent task runs (a task is given
# identifiers and values, not clients).
_CLIENT: ContextVar[WebhookClient | None] = ContextVar("webhook_client", default=None)


# --- the task --------------------------------------------------------------------------------


def _only_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's retry condition: another attempt only after a transient failure."""
    # _sync=True: in an async task a plain state.result() is a coroutine, and nothing retries.
    # (Prefect's async_dispatch adds `_sync`; its type hints do not show it.)
    error = state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]
    return isinstance(error, WebhookDeliveryError) and error.transient


@task(
    name="deliver-webhook",
    task_run_name="webhook {delivery.event}: {delivery.url}",
    retries=3,  # the defaults of REGBATCH_WEBHOOK_*; deliveries apply the settings (`_policed`)
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    retry_condition_fn=_only_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
async def deliver_webhook(
    delivery: WebhookDelivery, timeout_s: float = TIMEOUT_S
) -> DeliveryResult:
    """One attempt at `delivery`; raises a WebhookDeliveryError unless the receiver took it."""
    attempt, most = _attempt()
    target = await asyncio.to_thread(load_target, delivery)
    answer = await _post(delivery, target, timeout_s)
    await asyncio.to_thread(log_attempt, delivery, attempt, most, answer.status_code, answer.error)
    if answer.error is None:
        return _result(delivery, attempt, answer.status_code, None)
    kind = TransientWebhookError if answer.transient else PermanentWebhookError
    raise kind(
        f"webhook {delivery.event} to {delivery.url}: attempt {attempt} of {most} failed: "
        f"{answer.error}",
        reason=answer.error,
        status_code=answer.status_code,
        attempt=attempt,
    )


def _attempt() -> tuple[int, int]:
    """(this attempt's number, the most attempts Prefect will make) for the running task."""
    context = TaskRunContext.get()
    if context is None:
        return 1, 1
    return context.task_run.run_count, context.task.retries + 1


async def _post(delivery: WebhookDelivery, target: Target, timeout_s: float) -> Answer:
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: str(delivery.event),
        DELIVERY_HEADER: str(delivery.delivery_id),
        # Signed per attempt, so a retry after a long backoff is not stale on arrival.
        SIGNATURE_HEADER: signature_header(target.secret, int(time.time()), body),
    }
    client = _CLIENT.get()
    if client is not None:
        return await client.post(target.url, body, headers, timeout_s)
    async with WebhookClient(timeout_s=timeout_s) as own:  # a task run on its own
        return await own.post(target.url, body, headers)


def _result(
    delivery: WebhookDelivery, attempts: int, status_code: int | None, error: str | None
) -> DeliveryResult:
    return DeliveryResult(
        subscription_id=delivery.subscription_id,
        url=delivery.url,
        event=str(delivery.event),
        delivery_id=delivery.delivery_id,
        delivered=error is None,
        attempts=attempts,
        status_code=status_code,
        error=error,
    )


# --- delivering ------------------------------------------------------------------------------

DeliverTask = Task[[WebhookDelivery, float], Coroutine[Any, Any, DeliveryResult]]


def _policed(policy: DeliveryPolicy) -> DeliverTask:
    """`deliver_webhook` with the policy's attempts and exponential waits."""
    return deliver_webhook.with_options(
        retries=policy.attempts - 1,
        retry_delay_seconds=exponential_backoff(backoff_factor=policy.base_delay_s),
    )


async def deliver_all(
    deliveries: Sequence[WebhookDelivery], policy: DeliveryPolicy
) -> list[DeliveryResult]:
    """Every delivery at once, so a dead receiver's retries delay nobody; results in order."""
    deliver = _policed(policy)
    async with WebhookClient(timeout_s=policy.timeout_s) as client:
        token = _CLIENT.set(client)
        try:
            outcomes = [_outcome(deliver, d, policy.timeout_s) for d in deliveries]
            return list(await asyncio.gather(*outcomes))
        finally:
            _CLIENT.reset(token)


async def _outcome(
    deliver: DeliverTask, delivery: WebhookDelivery, timeout_s: float
) -> DeliveryResult:
    """The delivery's result: a failure is logged and reported, never raised."""
    try:
        return await deliver(delivery, timeout_s)
    except WebhookDeliveryError as exc:
        _logger().warning(
            "webhook %s to %s not delivered after %d attempt(s): %s",
            delivery.event,
            delivery.url,
            exc.attempt,
            exc.reason,
        )
        return _result(delivery, exc.attempt, exc.status_code, exc.reason)
    except Exception as exc:
        _logger().exception("webhook %s to %s could not be attempted", delivery.event, delivery.url)
        return _result(delivery, 0, None, f"{type(exc).__name__}: {exc}")


async def notify_batch_outcome(batch_id: uuid.UUID) -> list[DeliveryResult]:
    """Deliver the batch's outcome to every subscription that wants it; never raises."""
    try:
        policy = delivery_policy()
        deliveries = await asyncio.to_thread(plan_batch_event, batch_id)
    except Exception:
        _logger().exception(
            "webhooks of batch %s not delivered: they could not be planned", batch_id
        )
        return []
    if not deliveries:
        return []
    return await deliver_all(deliveries, policy)


def deliver_and_wait(
    deliveries: Sequence[WebhookDelivery], policy: DeliveryPolicy
) -> list[DeliveryResult]:
    """`deliver_all` for a synchronous caller, which waits for every outcome.

    Prefect's own bridge runs it on Prefect's event-loop thread, so it works whether or not the
    calling thread runs an event loop (an on_cancellation hook does).
    """
    # Outside a flow run, task-run logs cannot reach Prefect's API; without this, Prefect warns
    # about it on the caller's stderr (a CLI command's, say) at every retry.
    with temporary_settings(updates={PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        return run_coro_as_sync(deliver_all(deliveries, policy))


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The task or flow run's logger (shown in Prefect's UI), else this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def deliver_batch_event(
    batch_id: uuid.UUID,
    event: WebhookEvent | None = None,
    *,
    attempts: int | None = None,
    base_delay_s: float | None = None,
    timeout_s: float = TIMEOUT_S,
) -> list[DeliveryResult]:
    """Notify every subscriber of the batch's organisation that wants `event`; wait for them.

    `event` defaults to the one of the batch's status; a batch that is not stopped, or that
    nobody subscribed to, gives [] at once. Failed deliveries are retried, logged and returned,
    not raised.
    """
    policy = delivery_policy(attempts, base_delay_s, timeout_s)
    deliveries = plan_batch_event(batch_id, event)
    return deliver_and_wait(deliveries, policy) if deliveries else []


def announce_batch_outcome(
    batch_id: uuid.UUID, planned: Sequence[WebhookDelivery] | None = None
) -> list[DeliveryResult]:
    """`deliver_batch_event` for a caller whose own work is done (the deliveries `planned`
    already, if given): errors are logged, not raised."""
    try:
        if planned is None:
            return deliver_batch_event(batch_id)
        return deliver_and_wait(planned, delivery_policy()) if planned else []
    except Exception:
        logger.exception("the webhooks of batch %s were not delivered", batch_id)
        return []


def deliver_to_subscription(
    organisation: str | uuid.UUID,
    subscription_id: str | uuid.UUID,
    batch_id: str | uuid.UUID,
    *,
    attempts: int | None = None,
    base_delay_s: float | None = None,
    timeout_s: float = TIMEOUT_S,
) -> DeliveryResult:
    """Send the batch's current event to one subscription now (a test: its filters are ignored)."""
    policy = delivery_policy(attempts, base_delay_s, timeout_s)
    delivery = plan_test_delivery(organisation, subscription_id, batch_id)
    [result] = deliver_and_wait([delivery], policy)
    return result
