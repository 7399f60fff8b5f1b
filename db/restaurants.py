"""Restaurants: import (all rows valid or nothing), listing, and the record steps are built from."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from regbatch.config import build_config, problems_from_validation
from regbatch.db.imports import new_restaurant
from regbatch.db.models import Batch, Job, Restaurant
from regbatch.errors import InvalidInputError, Problem
from regbatch.preflight import preflight
from regbatch.restaurant import RECORD_FIELDS, RestaurantIn
from regbatch.selection import RestaurantSelection
from regbatch.statuses import BATCH_FINISHED


def validate_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[RestaurantIn], list[Problem]]:
    """Every row parsed, and every problem of every row (subject: 'row N', 1-based)."""
    parsed: list[RestaurantIn] = []
    problems: list[Problem] = []
    for position, row in enumerate(rows, start=1):
        subject = f"row {position}"
        if not isinstance(row, Mapping):
            problems.append(Problem("row", "is not an object of column: value", subject))
            continue
        try:
            parsed.append(RestaurantIn.model_validate(dict(row)))
        except ValidationError as exc:
            for problem in problems_from_validation(exc, "", "a restaurants column", RestaurantIn):
                problems.append(Problem(problem.field, problem.message, subject))
    return parsed, problems


def import_restaurants(
    session: Session, organisation_id: uuid.UUID, rows: Sequence[Mapping[str, Any]]
) -> list[Restaurant]:
    """Insert every row, or none: any bad row raises InvalidInputError listing all problems."""
    if not rows:
        raise InvalidInputError("the import file holds no restaurants; add at least one row")
    parsed, problems = validate_rows(rows)
    if problems:
        raise InvalidInputError(
            f"{len({p.subject for p in problems})} of {len(rows)} rows are invalid; "
            "nothing was imported, fix them and import again",
            problems,
        )
    restaurants = [new_restaurant(organisation_id, item) for item in parsed]
    session.add_all(restaurants)
    session.flush()
    return restaurants


def apply_selection(query: Select[Any], selection: RestaurantSelection) -> Select[Any]:
    """`query` over restaurants narrowed by every criterion of `selection`, best ICP score first
    (then name, id), at most its limit: the one place a restaurant filter becomes SQL."""
    query = query.where(*selection_criteria(selection))
    query = query.order_by(Restaurant.icp_score.desc(), Restaurant.name, Restaurant.id)
    return query if selection.limit is None else query.limit(selection.limit)


def selection_criteria(selection: RestaurantSelection) -> list[ColumnElement[bool]]:
    """The WHERE conditions of `selection`'s criteria (its limit and order aside)."""
    conditions: list[ColumnElement[bool]] = []
    if selection.city:
        # Case-insensitive: "auckland" finds "Auckland".
        conditions.append(func.lower(Restaurant.city) == selection.city.strip().lower())
    if selection.lead_stage:
        conditions.append(Restaurant.lead_stage == selection.lead_stage)
    if selection.lead_type:
        conditions.append(Restaurant.lead_type == selection.lead_type)
    if selection.min_icp_score is not None:
        conditions.append(Restaurant.icp_score >= selection.min_icp_score)
    if selection.registration_status:
        conditions.append(Restaurant.registration_status == selection.registration_status)
    if selection.restaurant_type:
        conditions.append(Restaurant.restaurant_type == selection.restaurant_type)
    if selection.search:
        pattern = "%" + _escape_like(selection.search.strip().lower()) + "%"
        columns = (Restaurant.name, Restaurant.email, Restaurant.city)
        conditions.append(or_(*(func.lower(c).like(pattern, escape="\\") for c in columns)))
    return conditions


def in_unfinished_batch() -> ColumnElement[bool]:
    """The restaurant has a job in a batch that has not finished (a draft included)."""
    return (
        select(Job.id)
        .join(Batch, Batch.id == Job.batch_id)
        .where(Job.restaurant_id == Restaurant.id, Batch.status.not_in(list(BATCH_FINISHED)))
        .exists()
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_restaurants(
    session: Session,
    organisation_id: uuid.UUID,
    selection: RestaurantSelection | None = None,
    **criteria: Any,
) -> list[Restaurant]:
    """The organisation's restaurants matching the selection (or the same criteria as keywords:
    city, lead_stage, ...), best ICP score first."""
    selection = selection or RestaurantSelection(**criteria)
    query = select(Restaurant).where(Restaurant.organisation_id == organisation_id)
    return list(session.scalars(apply_selection(query, selection)))


def free_restaurants(
    session: Session, organisation_id: uuid.UUID, selection: RestaurantSelection
) -> tuple[list[Restaurant], int]:
    """The organisation's restaurants matching `selection` that no unfinished batch holds, and
    how many more match but are held."""
    mine = select(Restaurant).where(Restaurant.organisation_id == organisation_id)
    free = list(session.scalars(apply_selection(mine.where(~in_unfinished_batch()), selection)))
    held = mine.where(*selection_criteria(selection), in_unfinished_batch()).subquery()
    return free, session.scalar(select(func.count()).select_from(held)) or 0


def restaurants_by_id(
    session: Session, organisation_id: uuid.UUID, restaurant_ids: Sequence[uuid.UUID]
) -> list[Restaurant]:
    """The organisation's restaurants among `restaurant_ids` (others are left out)."""
    if not restaurant_ids:
        return []
    query = select(Restaurant).where(
        Restaurant.organisation_id == organisation_id, Restaurant.id.in_(restaurant_ids)
    )
    return list(session.scalars(query))


def restaurant_record(restaurant: Restaurant) -> dict[str, Any]:
    """The restaurant as the mapping `regbatch.config.build_config` derives defaults from."""
    record = {name: getattr(restaurant, name) for name in RECORD_FIELDS}
    record["id"] = str(restaurant.id)
    return record


def registration_config(
    restaurant: Restaurant,
    settings: Mapping[str, Any] | None,
    override: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The restaurant's merged configuration (as stored on its job) and every pre-flight problem.

    Problems name the restaurant ("<id> (<name>)"); the configuration is None when it is invalid.
    """
    subject = f"{restaurant.id} ({restaurant.name})"
    try:
        config = build_config(restaurant_record(restaurant), settings, override)
    except ValidationError as exc:
        return None, [
            Problem(p.field, p.message, subject) for p in problems_from_validation(exc, "config")
        ]
    problems = [Problem(p.field, p.message, subject) for p in preflight(config)]
    return config.model_dump(mode="json"), problems
