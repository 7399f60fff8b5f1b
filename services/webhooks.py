"""Webhook subscriptions, and what a delivery of a batch's outcome needs from the database.

A delivery POSTs the signed JSON summary of the batch (regbatch.webhooks) to each active
subscription of the batch's organisation that wants the event. The POSTs and their retries are
Prefect task runs (regbatch.tasks.webhooks); this module plans them (which subscriptions, which
bytes), gives a task its subscription's URL and secret, and logs every attempt in the batch's
operation log. The synchronous entry points, `deliver_batch_event` and `deliver_to_subscription`,
are in regbatch.tasks.webhooks (above this layer).

Retry policy: keyword arguments, else REGBATCH_WEBHOOK_ATTEMPTS (default 4) and
REGBATCH_WEBHOOK_BASE_DELAY_SECONDS (default 1.0: waits of 1 s, 2 s, 4 s between attempts).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

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
from regbatch.errors import ConfigurationError, ConflictError, InvalidInputError
from regbatch.services.batches import parse_uuid
from regbatch.settings import get_settings
from regbatch.webhooks import (
    WebhookEvent,
    build_payload,
    encode_body,
    event_for_status,
    redact_url,
    resolved_url_problems,
)

TIMEOUT_S = 10.0
MAX_ATTEMPTS = 20  # as REGBATCH_WEBHOOK_ATTEMPTS allows

logger = logging.getLogger(__name__)


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


class WebhookDelivery(BaseModel):
    """One event of one batch for one subscription: what a delivery task is given.

    The body is encoded once, so every attempt sends (and signs) the same bytes; the URL and
    the secret are not in it: the task reads them itself (`load_target`).
    """

    model_config = ConfigDict(frozen=True)

    organisation_id: uuid.UUID
    batch_id: uuid.UUID
    subscription_id: uuid.UUID
    url: str
    """Without credentials, query string or fragment: what logs and results may show."""
    event: WebhookEvent
    delivery_id: uuid.UUID
    """The same across the attempts, so a receiver can drop duplicates."""
    body: str


@dataclass(frozen=True)
class DeliveryPolicy:
    """How many attempts a delivery makes, the first wait between them, and each one's timeout."""

    attempts: int
    base_delay_s: float
    timeout_s: float = TIMEOUT_S


@dataclass(frozen=True)
class Target:
    """Where a delivery goes and how it is signed; never logged, never a task parameter."""

    url: str
    secret: str = field(repr=False)


# --- subscriptions ---------------------------------------------------------------------------


def create_subscription(
    organisation: str | uuid.UUID, *, url: str, events: Sequence[str] = ()
) -> CreatedSubscription:
    """Subscribe `url` to `events` (all when empty); the result holds the secret, once.

    A URL whose host is, or resolves to, a loopback, private, link-local or otherwise
    non-public address is refused unless REGBATCH_WEBHOOK_ALLOW_PRIVATE allows it
    (regbatch.webhook_targets); its credentials (user:password@) are refused always.
    """
    allow_private = get_settings().webhook_allow_private
    # DNS is asked before the transaction opens: a slow resolver holds no connection.
    resolved = resolved_url_problems(url, allow_private=allow_private)
    if resolved:
        raise InvalidInputError("webhook not created: invalid subscription", resolved)
    with session_scope() as session:
        row, secret = data.create_subscription(
            session,
            organisation_id=_org_id(session, organisation),
            url=url,
            events=events,
            allow_private=allow_private,
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


# --- what a delivery needs ------------------------------------------------------------------


def delivery_policy(
    attempts: int | None = None, base_delay_s: float | None = None, timeout_s: float = TIMEOUT_S
) -> DeliveryPolicy:
    """The given policy, with the REGBATCH_WEBHOOK_* settings for what is not given."""
    settings = get_settings()
    attempts = settings.webhook_attempts if attempts is None else attempts
    base_delay_s = settings.webhook_base_delay_seconds if base_delay_s is None else base_delay_s
    if not 1 <= attempts <= MAX_ATTEMPTS or not base_delay_s >= 0 or not timeout_s > 0:
        raise ValueError(
            f"webhook policy attempts={attempts}, base_delay_s={base_delay_s}, "
            f"timeout_s={timeout_s} is out of range; give 1 to {MAX_ATTEMPTS} attempts, "
            "a delay >= 0 and a timeout > 0"
        )
    return DeliveryPolicy(attempts, base_delay_s, timeout_s)


def plan_batch_event(
    batch_id: uuid.UUID, event: WebhookEvent | None = None
) -> list[WebhookDelivery]:
    """One delivery per active subscription that wants `event` (default: the batch's status).

    [] when the batch is not stopped or nobody subscribed to its event.
    """
    with session_scope() as session:
        batch = get_batch(session, batch_id)
        chosen = WebhookEvent(event) if event else event_for_status(batch.status)
        if chosen is None:
            return []
        rows = data.subscriptions_for(session, batch.organisation_id, chosen)
        if not rows:
            return []
        body = _body(session, batch_id, chosen)
        return [_delivery(row, batch_id, chosen, body) for row in rows]


def plan_test_delivery(
    organisation: str | uuid.UUID, subscription_id: str | uuid.UUID, batch_id: str | uuid.UUID
) -> WebhookDelivery:
    """The batch's current event for one subscription of the organisation (its filters ignored)."""
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
        return _delivery(row, batch.id, event, _body(session, batch.id, event))


def load_target(delivery: WebhookDelivery) -> Target:
    """The subscription's URL and clear secret, read when an attempt needs them."""
    with session_scope() as session:
        row = data.get_subscription(session, delivery.subscription_id, delivery.organisation_id)
        return _target(row)


def log_attempt(
    delivery: WebhookDelivery,
    attempt: int,
    max_attempts: int,
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
                "subscription_id": str(delivery.subscription_id),
                "url": delivery.url,
                "event": str(delivery.event),
                "delivery_id": str(delivery.delivery_id),
                "attempt": attempt,
                "max_attempts": max_attempts,
                "status_code": status_code,
                "error": error,
            },
        )


def _body(session: Session, batch_id: uuid.UUID, event: WebhookEvent) -> str:
    detail = batch_detail(session, batch_id)
    payload = build_payload(detail, event, retry_batch_id=latest_retry_batch_id(session, batch_id))
    return encode_body(payload).decode()


def _delivery(
    row: WebhookSubscription, batch_id: uuid.UUID, event: WebhookEvent, body: str
) -> WebhookDelivery:
    _target(row)  # a secret that cannot be decrypted fails now, before any attempt
    return WebhookDelivery(
        organisation_id=row.organisation_id,
        batch_id=batch_id,
        subscription_id=row.id,
        url=redact_url(row.url),
        event=event,
        delivery_id=uuid.uuid4(),
        body=body,
    )


def _target(row: WebhookSubscription) -> Target:
    try:
        secret = passwords.decrypt(row.secret_encrypted)
    except ConfigurationError:
        raise ConfigurationError(
            f"the secret of webhook {row.id} cannot be decrypted with the current "
            "REGBATCH_SECRET_KEY; use the key it was created with, or delete and re-create it"
        ) from None
    return Target(row.url, secret)
