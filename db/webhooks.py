"""Webhook subscriptions: where an organisation wants batch outcomes POSTed, and their secrets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from regbatch import passwords
from regbatch.db.models import WebhookSubscription
from regbatch.errors import InvalidInputError, NotFoundError
from regbatch.webhooks import WebhookEvent, event_problems, generate_secret, url_problems


def create_subscription(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    url: str,
    events: Sequence[str] = (),
    allow_private: bool = False,
) -> tuple[WebhookSubscription, str]:
    """A new active subscription and its clear signing secret (the only time it is returned).

    No events means every event; the list is stored in full, so events added to the vocabulary
    later reach only the subscriptions that ask for them. `allow_private` lets the URL name a
    loopback or private-network address (REGBATCH_WEBHOOK_ALLOW_PRIVATE).
    """
    url = url.strip()
    problems = url_problems(url, allow_private=allow_private) + event_problems(events)
    if problems:
        raise InvalidInputError("webhook not created: invalid subscription", problems)
    chosen = list(dict.fromkeys(events)) if events else list(WebhookEvent)
    secret = generate_secret()
    subscription = WebhookSubscription(
        organisation_id=organisation_id,
        url=url,
        events=[str(WebhookEvent(e)) for e in chosen],
        secret_encrypted=passwords.encrypt(secret),
        active=True,
    )
    session.add(subscription)
    session.flush()
    return subscription, secret


def list_subscriptions(session: Session, organisation_id: uuid.UUID) -> list[WebhookSubscription]:
    """The organisation's subscriptions, oldest first."""
    query = select(WebhookSubscription).where(
        WebhookSubscription.organisation_id == organisation_id
    )
    return list(session.scalars(query.order_by(WebhookSubscription.created_at)))


def get_subscription(
    session: Session, subscription_id: uuid.UUID, organisation_id: uuid.UUID
) -> WebhookSubscription:
    """The subscription; NotFoundError when absent or another organisation's."""
    subscription = session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.id == subscription_id,
            WebhookSubscription.organisation_id == organisation_id,
        )
    )
    if subscription is None:
        raise NotFoundError(
            f"webhook {subscription_id} does not exist in this organisation; "
            "list them with `regbatch webhook list --org ORG`"
        )
    return subscription


def delete_subscription(
    session: Session, subscription_id: uuid.UUID, organisation_id: uuid.UUID
) -> None:
    """Remove the subscription; NotFoundError when absent or another organisation's."""
    session.delete(get_subscription(session, subscription_id, organisation_id))
    session.flush()


def subscriptions_for(
    session: Session, organisation_id: uuid.UUID, event: WebhookEvent
) -> list[WebhookSubscription]:
    """The organisation's active subscriptions that want `event`, oldest first."""
    query = select(WebhookSubscription).where(
        WebhookSubscription.organisation_id == organisation_id,
        WebhookSubscription.active.is_(True),
    )
    # An organisation has a handful of subscriptions; filtering the JSON list here works the
    # same on PostgreSQL and SQLite, where JSON containment operators differ.
    rows = session.scalars(query.order_by(WebhookSubscription.created_at))
    return [row for row in rows if str(event) in row.events]
