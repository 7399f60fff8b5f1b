"""Restaurants for programs: a filtered page with the total, and an upsert of rows matched on the
caller's external_id, else the email. Each call is one transaction: a bad row saves nothing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from regbatch.db.engine import session_scope
from regbatch.db.imports import upsert_restaurants
from regbatch.db.restaurants import page_restaurants, restaurants_by_id
from regbatch.errors import InvalidInputError, NotFoundError, Problem
from regbatch.selection import RestaurantSelection
from regbatch.services.batches import parse_uuid
from regbatch.views import RestaurantPage, RestaurantView, UpsertOutcome

PAGE_MAX = 500


def find_restaurants(
    organisation_id: uuid.UUID, selection: RestaurantSelection, *, offset: int = 0, limit: int = 50
) -> RestaurantPage:
    """One page of the organisation's restaurants matching `selection`, and the total."""
    problems = selection.problems()
    if not 1 <= limit <= PAGE_MAX:
        problems.append(Problem("limit", f"{limit} is out of range; use 1 to {PAGE_MAX}"))
    if offset < 0:
        problems.append(Problem("offset", f"{offset} is negative; use 0 or more"))
    if problems:
        raise InvalidInputError("invalid restaurant filters", problems)
    with session_scope() as session:
        rows, total = page_restaurants(session, organisation_id, selection, offset, limit)
        items = [RestaurantView.model_validate(r) for r in rows]
    return RestaurantPage(items=items, total_count=total, limit=limit, offset=offset)


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
