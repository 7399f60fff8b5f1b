"""`/webhooks`: where batch outcomes are POSTed, signed with a per-webhook secret."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from regbatch.api.rest.auth import CallerDep
from regbatch.api.rest.schemas import CreateWebhookRequest, error_responses
from regbatch.services import webhooks
from regbatch.services.webhooks import CreatedSubscription, SubscriptionView
from regbatch.webhooks import redact_url

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedSubscription,
    responses=error_responses(400),
    summary="Subscribe a URL to batch events; the signing secret is returned this once",
)
def create_webhook(
    body: CreateWebhookRequest, caller: CallerDep, response: Response
) -> CreatedSubscription:
    """201 with the subscription's URL (where it is deleted) in Location."""
    created = webhooks.create_subscription(
        caller.organisation_id, url=body.url, events=[str(e) for e in body.events]
    )
    response.headers["Location"] = f"/webhooks/{created.id}"
    return created


@router.get(
    "",
    response_model=list[SubscriptionView],
    responses=error_responses(),
    summary="List webhooks: never their secrets, URLs without credentials or query strings",
)
def list_webhooks(caller: CallerDep) -> list[SubscriptionView]:
    """The caller's subscriptions; a URL's credentials and query (where receivers put tokens)
    are shown only when the subscription is made."""
    # A receiver's URL may carry a token in its query or credentials; only creation shows it.
    return [
        row.model_copy(update={"url": redact_url(row.url)})
        for row in webhooks.list_subscriptions(caller.organisation_id)
    ]


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404),
    summary="Delete a webhook",
)
def delete_webhook(webhook_id: uuid.UUID, caller: CallerDep) -> Response:
    """204: the subscription is gone; no event is delivered to it any more."""
    webhooks.delete_subscription(caller.organisation_id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
