"""Organisations and restaurants: create, import, list."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regbatch.db.engine import session_scope
from regbatch.db.imports import RowOutcome, upsert_restaurants
from regbatch.db.organisations import create_organisation, find_organisation
from regbatch.db.restaurants import list_restaurants
from regbatch.errors import InvalidInputError
from regbatch.restaurant import RestaurantIn
from regbatch.selection import RestaurantSelection
from regbatch.services.import_files import read_rows
from regbatch.settings import get_settings


def new_organisation(name: str) -> uuid.UUID:
    """Create an organisation and return its id."""
    with session_scope() as session:
        return create_organisation(session, name).id


def organisation_id(ref: str) -> uuid.UUID:
    """The id of the organisation named or identified by `ref`."""
    with session_scope() as session:
        return find_organisation(session, ref).id


def import_file(organisation_ref: str, path: Path, *, dry_run: bool = False) -> list[RowOutcome]:
    """Import a restaurants file (CSV, JSON lines or a JSON array) into the organisation, row by
    row: each row creates, updates or leaves a restaurant (matched on external_id, else email).
    Every row is imported or none; `dry_run` reports the same outcomes and writes nothing."""
    rows = read_rows(path, get_settings().import_max_bytes)
    with session_scope() as session:
        org = find_organisation(session, organisation_ref)
        savepoint = session.begin_nested()
        outcomes = upsert_restaurants(session, org.id, rows, str(path))
        if dry_run:
            savepoint.rollback()
        else:
            savepoint.commit()
        return outcomes


def restaurants_of(
    organisation_ref: str, selection: RestaurantSelection | None = None
) -> list[dict[str, Any]]:
    """The organisation's restaurants as plain dicts (no password), filtered."""
    selection = selection or RestaurantSelection()
    if selection.problems():
        raise InvalidInputError("no restaurant listed: invalid filter", selection.problems())
    with session_scope() as session:
        org = find_organisation(session, organisation_ref)
        return [
            {"id": str(r.id), **{k: getattr(r, k) for k in _LISTED}}
            for r in list_restaurants(session, org.id, selection)
        ]


_LISTED: Sequence[str] = tuple(
    k for k in RestaurantIn.model_fields if k not in ("account_password", "menu", "opening_hours")
)
