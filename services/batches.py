"""Batch operations that read or create batches; each call is one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD
from regbatch.db import batches as batch_data
from regbatch.db.engine import session_scope
from regbatch.db.models import Restaurant
from regbatch.db.organisations import find_organisation
from regbatch.db.restaurants import free_restaurants, restaurants_by_id
from regbatch.errors import InvalidInputError, Problem
from regbatch.selection import RestaurantSelection
from regbatch.settings import get_settings
from regbatch.statuses import ExecutionMode
from regbatch.views import BatchDetail, BatchPage, BatchReport


def parse_uuid(value: str | uuid.UUID, what: str) -> uuid.UUID:
    """`value` as a UUID, or InvalidInputError naming what it was meant to identify."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError(
            f"{what} {value!r} is not an id",
            [Problem(what, f"{value!r} is not a UUID; copy the id from the list command")],
        ) from None


def _parse_ids(restaurant_ids: Sequence[str | uuid.UUID]) -> list[uuid.UUID]:
    bad_ids = []
    ids: list[uuid.UUID] = []
    for raw in restaurant_ids:
        try:
            ids.append(parse_uuid(raw, "restaurant_ids"))
        except InvalidInputError:
            bad_ids.append(Problem("restaurant_ids", "is not a UUID", str(raw)))
    if bad_ids:
        raise InvalidInputError("batch not created: some restaurant ids are malformed", bad_ids)
    return ids


@dataclass(frozen=True)
class ChosenRestaurants:
    """The restaurants a batch would take (as rows to show), and how many the filters matched
    but left out because an unfinished batch holds them."""

    rows: list[dict[str, Any]]
    held: int = 0


def select_restaurants(
    organisation: str | uuid.UUID,
    *,
    restaurant_ids: Sequence[str | uuid.UUID] = (),
    selection: RestaurantSelection | None = None,
) -> ChosenRestaurants:
    """The restaurants a batch would take, in batch order: the given ids first (as given), then
    those matching `selection` that no unfinished batch holds (best ICP first); each once. Ids
    that are not the organisation's are left out here: creating the batch names them."""
    ids = list(dict.fromkeys(_parse_ids(restaurant_ids)))
    if selection is not None and selection.problems():
        raise InvalidInputError("no restaurant selected: invalid selection", selection.problems())
    held = 0
    with session_scope() as session:
        org_id = _organisation_id(session, organisation)
        given = {r.id: r for r in restaurants_by_id(session, org_id, ids)}
        rows = [given[rid] for rid in ids if rid in given]
        if selection is not None and selection.selects:
            free, held = free_restaurants(session, org_id, selection)
            rows += [r for r in free if r.id not in given]
        return ChosenRestaurants(
            [{"id": str(r.id), **{k: getattr(r, k) for k in SELECTION_COLUMNS}} for r in rows],
            held,
        )


SELECTION_COLUMNS = ("name", "city", "lead_stage", "lead_type", "icp_score", "registration_status")


def create_batch(
    organisation: str | uuid.UUID,
    *,
    name: str,
    restaurant_ids: Sequence[str | uuid.UUID],
    settings: Mapping[str, Any] | None = None,
    overrides: Mapping[uuid.UUID, Mapping[str, Any]] | None = None,
    execution_mode: str = ExecutionMode.SEQUENTIAL,
    concurrency: int | None = None,
    breaker_threshold: float = BREAKER_THRESHOLD,
    breaker_min_finished: int = BREAKER_MIN_FINISHED,
    created_by: str | None = None,
    dry_run: bool = False,
) -> uuid.UUID:
    """Create a batch in `draft`; nothing is written when any check fails.

    With `dry_run`, every check runs and the batch is made, then rolled back: nothing is
    written and the id returned belongs to no batch.
    """
    ids = _parse_ids(restaurant_ids)
    if concurrency is None:
        concurrency = (
            1 if execution_mode == ExecutionMode.SEQUENTIAL else get_settings().default_concurrency
        )
    with session_scope() as session:
        org_id = _organisation_id(session, organisation)
        savepoint = session.begin_nested()
        batch = batch_data.create_batch(
            session,
            organisation_id=org_id,
            name=name,
            restaurant_ids=ids,
            settings=settings,
            overrides=overrides,
            execution_mode=execution_mode,
            concurrency=concurrency,
            breaker_threshold=breaker_threshold,
            breaker_min_finished=breaker_min_finished,
            created_by=created_by,
            max_size=get_settings().max_batch_size,
        )
        batch_id = batch.id
        if dry_run:
            savepoint.rollback()
        else:
            savepoint.commit()
        return batch_id


def get_batch(
    batch_id: str | uuid.UUID, organisation: str | uuid.UUID | None = None
) -> BatchDetail:
    """The batch with its jobs and steps; NotFoundError when it is not in `organisation`."""
    with session_scope() as session:
        org_id = _organisation_id(session, organisation) if organisation else None
        return batch_data.batch_detail(session, parse_uuid(batch_id, "batch_id"), org_id)


def report_batch(batch_id: str | uuid.UUID, jobs_max: int) -> BatchReport:
    """The batch with at most `jobs_max` of its jobs: all of them in its order when it has no
    more; else the failed ones first, then the others in its order (`db.batches.batch_report`,
    what its Prefect table shows). NotFoundError when there is no such batch."""
    with session_scope() as session:
        return batch_data.batch_report(session, parse_uuid(batch_id, "batch_id"), jobs_max)


def list_batches(
    organisation: str | uuid.UUID,
    *,
    statuses: Sequence[str] = (),
    created_after: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> BatchPage:
    """One page of the organisation's batches, newest first."""
    with session_scope() as session:
        org_id = _organisation_id(session, organisation)
        return batch_data.list_batches(
            session,
            org_id,
            statuses=statuses,
            created_after=created_after,
            limit=limit,
            cursor=cursor,
        )


def _organisation_id(session: Any, organisation: str | uuid.UUID) -> uuid.UUID:
    if isinstance(organisation, uuid.UUID):
        return organisation
    return find_organisation(session, organisation).id


def create_single(
    organisation: str | uuid.UUID,
    restaurant_id: str | uuid.UUID,
    *,
    settings: Mapping[str, Any] | None = None,
    created_by: str | None = None,
) -> uuid.UUID:
    """A batch of one restaurant, named "Single: <restaurant name>" (the one code path)."""
    rid = parse_uuid(restaurant_id, "restaurant_id")
    with session_scope() as session:
        org_id = _organisation_id(session, organisation)
        restaurant = session.get(Restaurant, rid)
        name = (
            f"Single: {restaurant.name}"
            if restaurant is not None and restaurant.organisation_id == org_id
            else "Single"
        )
        return batch_data.create_batch(
            session,
            organisation_id=org_id,
            name=name[:200],
            restaurant_ids=[rid],
            settings=settings,
            created_by=created_by,
            max_size=1,
        ).id
