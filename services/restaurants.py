"""Restaurants for programs: one by id, and an upsert of rows matched on the caller's external_id,
else the email (a filtered page is services/shortlist.restaurant_page). Each call is one
transaction: a bad row saves nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from regbatch.db.engine import session_scope
from regbatch.db.imports import upsert_restaurants
from regbatch.db.restaurants import restaurants_by_id
from regbatch.errors import NotFoundError
from regbatch.services.batches import parse_uuid
from regbatch.views import RestaurantView, UpsertOutcome


def save_restaurants(
    organisation_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> list[UpsertOutcome]:
    """Create, update or leave each row's restaurant (matched on external_id, else email), in
    one transaction: InvalidInputError naming every bad row, and nothing saved, if any is bad."""
    with session_scope() as session:
        outcomes = upsert_restaurants(
            session, organisation_id, enumerate(rows, start=1), "the request"
        )
    return [UpsertOutcome(row=o.row, action=o.action, id=o.id, name=o.name) for o in outcomes]


def get_restaurant(organisation_id: uuid.UUID, restaurant_id: str | uuid.UUID) -> RestaurantView:
    """One restaurant of the organisation; NotFoundError otherwise."""
    rid = parse_uuid(restaurant_id, "restaurant_id")
    with session_scope() as session:
        found = restaurants_by_id(session, organisation_id, [rid])
        if not found:
            raise NotFoundError(
                f"restaurant {rid} does not exist in this organisation; list them with "
                "GET /restaurants"
            )
        return RestaurantView.model_validate(found[0])
