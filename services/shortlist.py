"""Choosing restaurants for a batch: a page of those a filter matches, every id it matches, and
the pre-flight of a chosen set under the batch's settings (nothing written). Each call is one
transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from regbatch.db import shortlist as data
from regbatch.db.engine import session_scope
from regbatch.errors import InvalidInputError, Problem
from regbatch.selection import RestaurantSelection
from regbatch.settings import get_settings
from regbatch.views import PreflightRow, RestaurantPage


def restaurant_page(
    organisation_id: uuid.UUID, selection: RestaurantSelection, *, offset: int = 0, limit: int = 100
) -> RestaurantPage:
    """One page of the organisation's restaurants the selection matches, with the total."""
    with session_scope() as session:
        return data.restaurant_page(session, organisation_id, selection, offset=offset, limit=limit)


def matching_ids(organisation_id: uuid.UUID, selection: RestaurantSelection) -> list[uuid.UUID]:
    """Every id the selection matches; InvalidInputError when more than a batch may hold."""
    most = get_settings().max_batch_size
    with session_scope() as session:
        ids = data.matching_ids(session, organisation_id, selection, most)
    if len(ids) > most:
        raise InvalidInputError(
            "too many restaurants match",
            [
                Problem(
                    "selection",
                    f"matches more than {most} restaurants, the most a batch holds "
                    "(REGBATCH_MAX_BATCH_SIZE); narrow the filter",
                )
            ],
        )
    return ids


def preflight(
    organisation_id: uuid.UUID,
    restaurant_ids: Sequence[uuid.UUID],
    settings: Mapping[str, Any] | None = None,
) -> list[PreflightRow]:
    """Each chosen restaurant with its pre-flight problems and the batch already holding it."""
    with session_scope() as session:
        return data.preflight_rows(session, organisation_id, restaurant_ids, settings)
