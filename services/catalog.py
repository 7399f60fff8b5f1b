"""Organisations and restaurants: create, import, list."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regbatch.db.engine import session_scope
from regbatch.db.organisations import create_organisation, find_organisation
from regbatch.db.restaurants import import_restaurants, list_restaurants
from regbatch.errors import InvalidInputError, Problem
from regbatch.restaurant import RestaurantIn
from regbatch.selection import RestaurantSelection

JSON_COLUMNS = ("opening_hours", "menu")


def new_organisation(name: str) -> uuid.UUID:
    """Create an organisation and return its id."""
    with session_scope() as session:
        return create_organisation(session, name).id


def organisation_id(ref: str) -> uuid.UUID:
    """The id of the organisation named or identified by `ref`."""
    with session_scope() as session:
        return find_organisation(session, ref).id


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a restaurants file: a JSON array of objects, or CSV with the same column names."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}; check the path") from None
    if path.suffix.lower() == ".csv":
        return _csv_rows(text)
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "give a JSON array of restaurant objects, or a .csv file"
        ) from None
    if not isinstance(rows, list):
        raise InvalidInputError(
            f"{path} holds a JSON {type(rows).__name__}, not an array; "
            "wrap the restaurants in [ ... ]"
        )
    return rows


def _csv_rows(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for position, raw in enumerate(csv.DictReader(io.StringIO(text)), start=1):
        row: dict[str, Any] = {
            k: v for k, v in raw.items() if k is not None and v not in ("", None)
        }
        for column in JSON_COLUMNS:
            if column in row:
                try:
                    row[column] = json.loads(row[column])
                except json.JSONDecodeError as exc:
                    problems.append(
                        Problem(
                            column,
                            f"is not JSON ({exc.msg}); write it as a JSON object in the cell",
                            f"row {position}",
                        )
                    )
        rows.append(row)
    if problems:
        raise InvalidInputError("the CSV file has invalid cells; nothing was imported", problems)
    return rows


def import_file(organisation_ref: str, path: Path) -> list[uuid.UUID]:
    """Import every restaurant of a file into the organisation, or none of them."""
    rows = read_rows(path)
    with session_scope() as session:
        org = find_organisation(session, organisation_ref)
        return [r.id for r in import_restaurants(session, org.id, rows)]


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
