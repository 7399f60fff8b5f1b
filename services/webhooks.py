"""Webhook subscriptions, and the delivery of a batch's outcome to every subscriber.

A delivery POSTs the signed JSON summary of the batch (regbatch.webhooks) to each active
subscription of the batch's organisation that wants the event. Anything but a 2xx (an error
status, a redirect, a refused connection, a timeout) is retried with exponential backoff, and
every attempt lands in the batch's operation log. Receivers failing never raise here.

Retry policy: keyword arguments, else REGBATCH_WEBHOOK_ATTEMPTS (default 4) and
REGBATCH_WEBHOOK_BASE_DELAY_SECONDS (default 1.0: waits of 1 s, 2 s, 4 s between attempts).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from regbatch import passwords
from regbatch.audit import Operation
from regbatch.db import webhooks as data
from regbatch.db.batches import batch_detail, get_batch, latest_retry_batch_id
from regbatch.db.engine import session_scope
from regbatch.db.models import WebhookSubscription
from regbatch.db.oplog import append_log
from regbatch.db.organisations import find_organisation
from regbatch.errors import ConfigurationError, ConflictError
from regbatch.services.batches import parse_uuid
from regbatch.settings import get_settings
from regbatch.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookEvent,
    build_payload,
    event_for_status,
    redact_url,
    signature_header,
)

TIMEOUT_S = 10.0
_USER_AGENT = "regbatch-webhooks/1"

logger = logging.getLogger(__name__)
T = TypeVar("T")


class SubscriptionView(BaseModel):
    """A subscription as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class CreatedSubscription(SubscriptionView):
    """A new subscription with its signing secret, shown this once and never again."""

    secret: str


class DeliveryResult(BaseModel):
    """How one subscription's delivery of one event ended."""

    subscription_id: uuid.UUID
    url: str
    """Without credentials, query string or fragment."""
    event: str
    delivery_id: uuid.UUID
    delivered: bool
    attempts: int
    status_code: int | None
    error: str | None


# --- subscriptions ---------------------------------------------------------------------------


def create_subscription(
    organisation: str | uuid.UUID, *, url: str, events: Sequence[str] = ()
) -> CreatedSubscription:
    """Subscribe `url` to `events` (all when empty); the result holds the secret, once."""
    with session_scope() as session:
        row, secret = data.create_subscription(
            session, organisation_id=_org_id(session, organisation), url=url, events=events
        )
        return CreatedSubscription(
            **SubscriptionView.model_validate(row).model_dump(), secret=secret
        )


def list_subscriptions(organisation: str | uuid.UUID) -> list[SubscriptionView]:
    """The organisation's subscriptions, without secrets."""
    with session_scope() as session:
        rows = data.list_subscriptions(session, _org_id(session, organisation))
        return [SubscriptionView.model_validate(row) for row in rows]


def delete_subscription(organisation: str | uuid.UUID, subscription_id: str | uuid.UUID) -> None:
    """Remove a subscription of the organisation."""
    with session_scope() as session:
        data.delete_subscription(
            session, parse_uuid(subscription_id, "webhook_id"), _org_id(session, organisation)
        )


def _org_id(session: Session, organisation: str | uuid.UUID) -> uuid.UUID:
    if isinstance(organisation, uuid.UUID):
        return organisation
    return find_organisation(session, organisation).id


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    subscription_id: uuid.UUID
    url: str
    secret: str


@dataclass(frozen=True)
class _Delivery:
    organisation_id: uuid.UUID
    batch_id: uuid.UUID
    event: WebhookEvent
    body: bytes
    attempts: int
    base_delay_s: float
    timeout_s: float


def deliver_batch_event(
    batch_id: uuid.UUID,
    event: WebhookEvent | None = None,
    *,
    attempts: int | None = None,
    base_delay_s: float | None = None,
    timeout_s: float = TIMEOUT_S,
) -> list[DeliveryResult]:
    """Notify every subscriber of the batch's organisation that wants `event`.

    `event` defaults to the one of the batch's status; a batch that is not stopped, or that
    nobody subscribed to, gives []. HTTP failures are retried, logged and returned, not raised.
    """
    attempts, base_delay_s = _policy(attempts, base_delay_s)
    with session_scope() as session:
        batch = get_batch(session, batch_id)
        chosen = WebhookEvent(event) if event else event_for_status(batch.status)
        if chosen is None:
            return []
        rows = data.subscriptions_for(session, batch.organisation_id, chosen)
        if not rows:
            return []
        delivery = _prepare(session, batch_id, chosen, attempts, base_delay_s, timeout_s)
        targets = [_target(row) for row in rows]
    return _deliver_all(delivery, targets)


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
    attempts, base_delay_s = _policy(attempts, base_delay_s)
    with session_scope() as session:
        org_id = _org_id(session, organisation)
        row = data.get_subscription(session, parse_uuid(subscription_id, "webhook_id"), org_id)
        batch = get_batch(session, parse_uuid(batch_id, "batch_id"), org_id)
        event = event_for_status(batch.status)
        if event is None:
            raise ConflictError(
                f"batch {batch.id} is {batch.status!r}, which no webhook event announces; "
                "test with a batch that is completed, failed, paused or cancelled"
            )
        delivery = _prepare(session, batch.id, event, attempts, base_delay_s, timeout_s)
        target = _target(row)
    return _deliver_one(delivery, target)


async def deliver_batch_event_async(
    batch_id: uuid.UUID, event: WebhookEvent | None = None, **options: Any
) -> list[DeliveryResult]:
    """`deliver_batch_event` in a worker thread, for the batch flow's event loop."""
    return await asyncio.to_thread(deliver_batch_event, batch_id, event, **options)


def _prepare(
    session: Session,
    batch_id: uuid.UUID,
    event: WebhookEvent,
    attempts: int,
    base_delay_s: float,
    timeout_s: float,
) -> _Delivery:
    detail = batch_detail(session, batch_id)
    payload = build_payload(detail, event, retry_batch_id=latest_retry_batch_id(session, batch_id))
    # Compact and encoded once: the signature covers exactly these bytes on every attempt.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _Delivery(
        detail.organisation_id, batch_id, event, body, attempts, base_delay_s, timeout_s
    )


def _target(row: WebhookSubscription) -> _Target:
    try:
        secret = passwords.decrypt(row.secret_encrypted)
    except ConfigurationError:
        raise ConfigurationError(
            f"the secret of webhook {row.id} cannot be decrypted with the current "
            "REGBATCH_SECRET_KEY; use the key it was created with, or delete and re-create it"
        ) from None
    return _Target(row.id, row.url, secret)


def _deliver_all(delivery: _Delivery, targets: list[_Target]) -> list[DeliveryResult]:
    if len(targets) == 1:
        return [_deliver_one(delivery, targets[0])]
    # One slow or dead receiver must not delay the others by its retries.
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        return list(pool.map(lambda target: _deliver_one(delivery, target), targets))


def _deliver_one(delivery: _Delivery, target: _Target) -> DeliveryResult:
    delivery_id = uuid.uuid4()
    status_code: int | None = None
    error: str | None = None
    for attempt in range(1, delivery.attempts + 1):
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            EVENT_HEADER: str(delivery.event),
            DELIVERY_HEADER: str(delivery_id),
            # Signed per attempt, so a retry after a long backoff is not stale on arrival.
            SIGNATURE_HEADER: signature_header(target.secret, int(time.time()), delivery.body),
        }
        status_code, error = _post(target.url, delivery.body, headers, delivery.timeout_s)
        delivered = error is None
        _log_attempt(delivery, target, delivery_id, attempt, status_code, error)
        if delivered:
            return _result(delivery, target, delivery_id, True, attempt, status_code, None)
        if attempt < delivery.attempts:
            time.sleep(delivery.base_delay_s * 2 ** (attempt - 1))
    logger.warning(
        "webhook %s to %s failed %d times: %s",
        delivery.event,
        redact_url(target.url),
        delivery.attempts,
        error,
    )
    return _result(delivery, target, delivery_id, False, delivery.attempts, status_code, error)


def _result(
    delivery: _Delivery,
    target: _Target,
    delivery_id: uuid.UUID,
    delivered: bool,
    attempts: int,
    status_code: int | None,
    error: str | None,
) -> DeliveryResult:
    return DeliveryResult(
        subscription_id=target.subscription_id,
        url=redact_url(target.url),
        event=str(delivery.event),
        delivery_id=delivery_id,
        delivered=delivered,
        attempts=attempts,
        status_code=status_code,
        error=error,
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers, not successes: urllib would re-send a POST as a bodiless GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> tuple[int | None, str | None]:
    """(status code, error): error is None exactly when the receiver answered 2xx."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, f"HTTP {exc.code} {exc.reason}".strip()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return None, f"timed out after {timeout_s:g} s"
        return None, f"connection failed: {exc.reason}"
    except TimeoutError:
        return None, f"timed out after {timeout_s:g} s"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _log_attempt(
    delivery: _Delivery,
    target: _Target,
    delivery_id: uuid.UUID,
    attempt: int,
    status_code: int | None,
    error: str | None,
) -> None:
    """One log entry per attempt (never the secret or the signature), committed at once."""
    with session_scope() as session:
        append_log(
            session,
            organisation_id=delivery.organisation_id,
            batch_id=delivery.batch_id,
            operation=Operation.WEBHOOK_DELIVERED if error is None else Operation.WEBHOOK_FAILED,
            actor="system",
            details={
                "subscription_id": str(target.subscription_id),
                "url": redact_url(target.url),
                "event": str(delivery.event),
                "delivery_id": str(delivery_id),
                "attempt": attempt,
                "max_attempts": delivery.attempts,
                "status_code": status_code,
                "error": error,
            },
        )


def _policy(attempts: int | None, base_delay_s: float | None) -> tuple[int, float]:
    settings = get_settings()
    attempts = settings.webhook_attempts if attempts is None else attempts
    base_delay_s = settings.webhook_base_delay_seconds if base_delay_s is None else base_delay_s
    if attempts < 1 or not base_delay_s >= 0:
        raise ValueError(f"attempts={attempts} must be >= 1 and base_delay_s={base_delay_s} >= 0")
    return attempts, base_delay_s
