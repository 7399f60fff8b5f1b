"""Choosing restaurants for a batch on a screen: a page of the restaurants a filter matches (the
one filter, regbatch.selection, made SQL by db/restaurants.apply_selection), every id it
matches, and the pre-flight of a chosen set before any batch exists."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from regbatch.db.batches import unfinished_elsewhere
from regbatch.db.models import Restaurant
from regbatch.db.restaurants import apply_selection, registration_config
from regbatch.errors import InvalidInputError
from regbatch.selection import RestaurantSelection
from regbatch.views import PreflightRow, RestaurantPage, RestaurantRow

_LISTED = (
    Restaurant.id,
    Restaurant.name,
    Restaurant.city,
    Restaurant.lead_stage,
    Restaurant.lead_type,
    Restaurant.restaurant_type,
    Restaurant.registration_status,
    Restaurant.icp_score,
    Restaurant.external_id,
    Restaurant.email,
)


def _checked(selection: RestaurantSelection) -> RestaurantSelection:
    problems = selection.problems()
    if problems:
        raise InvalidInputError("invalid restaurant filter", problems)
    return selection


def restaurant_page(
    session: Session,
    organisation_id: uuid.UUID,
    selection: RestaurantSelection,
    *,
    offset: int = 0,
    limit: int = 100,
) -> RestaurantPage:
    """One page of the organisation's restaurants the selection matches (best ICP score first),
    and how many it matches: two queries."""
    # apply_selection is typed for one-column queries; it only adds WHERE, ORDER BY and LIMIT.
    mine = cast(
        "Select[Any]", select(*_LISTED).where(Restaurant.organisation_id == organisation_id)
    )
    query = apply_selection(mine, _checked(selection))
    rows = session.execute(query.offset(offset).limit(limit)).all()
    counted = apply_selection(
        select(Restaurant.id).where(Restaurant.organisation_id == organisation_id), selection
    )
    total = session.scalar(select(func.count()).select_from(counted.subquery())) or 0
    items = [RestaurantRow.model_validate(row._asdict()) for row in rows]
    return RestaurantPage(items=items, total=int(total), offset=offset, limit=limit)


def matching_ids(
    session: Session, organisation_id: uuid.UUID, selection: RestaurantSelection, most: int
) -> list[uuid.UUID]:
    """The ids the selection matches, in its order; at most `most` + 1 (the caller tells the
    user when there are more than a batch may hold)."""
    query = apply_selection(
        select(Restaurant.id).where(Restaurant.organisation_id == organisation_id),
        _checked(selection),
    )
    return list(session.scalars(query.limit(most + 1)))


def preflight_rows(
    session: Session,
    organisation_id: uuid.UUID,
    restaurant_ids: Sequence[uuid.UUID],
    settings: Mapping[str, Any] | None,
) -> list[PreflightRow]:
    """Each chosen restaurant of the organisation with its pre-flight problems under `settings`
    and the unfinished batch holding it; nothing is written. Unknown ids are left out."""
    found = {
        r.id: r
        for r in session.scalars(
            select(Restaurant).where(
                Restaurant.organisation_id == organisation_id, Restaurant.id.in_(restaurant_ids)
            )
        )
    }
    busy = {rid: batch_id for rid, batch_id, _ in unfinished_elsewhere(session, list(found))}
    rows = []
    for rid in restaurant_ids:
        restaurant = found.get(rid)
        if restaurant is None:
            continue
        _, problems = registration_config(restaurant, settings)
        rows.append(
            PreflightRow(
                id=rid,
                name=restaurant.name,
                city=restaurant.city,
                problems=[f"{p.field}: {p.message}" for p in problems],
                busy_in_batch=busy.get(rid),
            )
        )
    return rows
