"""Restaurant import as an upsert: each row matches the organisation's restaurant with the same
`external_id` (when the row has one), else the same email (any case), and is created, updated
or left unchanged. Rows stream in and are written in chunks; any bad row makes the whole
import an InvalidInputError (the caller's transaction then writes nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from regbatch import passwords
from regbatch.config import problems_from_validation
from regbatch.db.models import Restaurant
from regbatch.errors import InvalidInputError, Problem
from regbatch.restaurant import ImportAction, RegistrationStatus, RestaurantIn

CHUNK_ROWS = 100
PROBLEMS_KEPT = 50  # an error lists this many problems at most, and counts the rest


@dataclass(frozen=True)
class RowOutcome:
    """What the import did with one row of the file."""

    row: int
    action: ImportAction
    id: uuid.UUID
    name: str


@dataclass
class ImportReport:
    """Every row's outcome, or the problems that stopped the import."""

    outcomes: list[RowOutcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bad_rows: set[int] = field(default_factory=set)
    rows: int = 0
    keys: dict[tuple[str, str], int] = field(default_factory=dict)  # match key -> its row

    def problem(self, row: int, name: str, message: str) -> None:
        self.bad_rows.add(row)
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(Problem(name, message, f"row {row}"))


def upsert_restaurants(
    session: Session,
    organisation_id: uuid.UUID,
    rows: Iterable[tuple[int, Any]],
    source: str = "the import file",
) -> list[RowOutcome]:
    """Create, update or leave each row's restaurant; InvalidInputError listing the problems
    (the first PROBLEMS_KEPT, and how many rows are bad) when any row is bad.

    Each chunk is flushed, then the session's objects are expunged, so that memory holds one
    chunk whatever the file's size: the caller keeps ids, not objects, across this call.
    """
    report = ImportReport()
    iterator = iter(rows)
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        report.rows += len(chunk)
        parsed = _parse_chunk(chunk, report)
        if report.problems:
            continue  # keep checking the rest, write nothing more
        _write_chunk(session, organisation_id, parsed, report)
        session.flush()
        session.expunge_all()  # the rows are written: memory stays one chunk's
    if not report.rows:
        raise InvalidInputError(f"{source} holds no restaurants; add at least one row")
    if report.problems:
        more = len(report.bad_rows) - len({p.subject for p in report.problems})
        raise InvalidInputError(
            f"{len(report.bad_rows)} of {report.rows} rows are invalid; nothing was imported, "
            "fix them and import again" + (f" (the first {PROBLEMS_KEPT} shown)" if more else ""),
            report.problems,
        )
    return report.outcomes


def _parse_chunk(
    chunk: list[tuple[int, Any]], report: ImportReport
) -> list[tuple[int, RestaurantIn]]:
    parsed = []
    for row, data in chunk:
        if not isinstance(data, Mapping):
            report.problem(row, "row", "is not an object of column: value")
            continue
        try:
            item = RestaurantIn.model_validate(dict(data))
        except ValidationError as exc:
            for p in problems_from_validation(exc, "", "a restaurants column", RestaurantIn):
                report.problem(row, p.field, p.message)
            continue
        key = match_key(item)
        if key is not None and key in report.keys:
            report.problem(
                row, key[0], f"{key[1]!r} is also row {report.keys[key]}; list each restaurant once"
            )
            continue
        if key is not None:
            report.keys[key] = row
        parsed.append((row, item))
    return parsed


def match_key(item: RestaurantIn) -> tuple[str, str] | None:
    """What a row matches an existing restaurant on: its external_id, else its email."""
    if item.external_id:
        return ("external_id", item.external_id)
    if item.email:
        return ("email", item.email.lower())
    return None


def _existing(
    session: Session, organisation_id: uuid.UUID, parsed: list[tuple[int, RestaurantIn]]
) -> list[Restaurant]:
    """The organisation's restaurants the chunk's rows may match."""
    external = [i.external_id for _, i in parsed if i.external_id]
    emails = [i.email.lower() for _, i in parsed if i.email]
    if not external and not emails:
        return []
    query = select(Restaurant).where(
        Restaurant.organisation_id == organisation_id,
        or_(Restaurant.external_id.in_(external), func.lower(Restaurant.email).in_(emails)),
    )
    return list(session.scalars(query))


def _write_chunk(
    session: Session,
    organisation_id: uuid.UUID,
    parsed: list[tuple[int, RestaurantIn]],
    report: ImportReport,
) -> None:
    by_external: dict[str, Restaurant] = {}
    by_email: dict[str, list[Restaurant]] = {}
    for restaurant in _existing(session, organisation_id, parsed):
        if restaurant.external_id:
            by_external[restaurant.external_id] = restaurant
        if restaurant.email:
            by_email.setdefault(restaurant.email.lower(), []).append(restaurant)
    for row, item in parsed:
        match = _match(item, by_external, by_email)
        if isinstance(match, Problem):
            report.problem(row, match.field, match.message)
        elif match is None:
            restaurant = new_restaurant(organisation_id, item)
            session.add(restaurant)
            report.outcomes.append(RowOutcome(row, ImportAction.CREATED, restaurant.id, item.name))
        else:
            action = _update(match, item)
            report.outcomes.append(RowOutcome(row, action, match.id, item.name))


def _match(
    item: RestaurantIn,
    by_external: Mapping[str, Restaurant],
    by_email: Mapping[str, list[Restaurant]],
) -> Restaurant | Problem | None:
    """The restaurant the row is; a Problem when its email names several."""
    if item.external_id and item.external_id in by_external:
        return by_external[item.external_id]
    if not item.email:
        return None
    # A row with an external_id adopts a restaurant imported without one, never another's.
    candidates = [
        r
        for r in by_email.get(item.email.lower(), [])
        if r.external_id is None or r.external_id == item.external_id
    ]
    if len(candidates) > 1:
        ids = ", ".join(sorted(str(r.id) for r in candidates))
        return Problem(
            "email",
            f"{item.email!r} matches {len(candidates)} restaurants ({ids}); add an external_id "
            "column to tell them apart",
        )
    return candidates[0] if candidates else None


def new_restaurant(organisation_id: uuid.UUID, item: RestaurantIn) -> Restaurant:
    """The row as a new restaurant (its password encrypted, or a strong one generated)."""
    data = item.model_dump(mode="json", exclude={"account_password"})
    password = (
        item.account_password.get_secret_value()
        if item.account_password
        else passwords.generate_password()
    )
    return Restaurant(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        account_password_encrypted=passwords.encrypt(password),
        **data,
    )


def _update(restaurant: Restaurant, item: RestaurantIn) -> ImportAction:
    """Set the columns the row gives (the others keep their values); say whether any changed.

    A restaurant's `registration_status` is registration's record once it has begun: a row
    (such as the sample file's `"unregistered"`) sets it only on an unregistered restaurant.
    """
    kept = {"account_password"}
    if restaurant.registration_status != RegistrationStatus.UNREGISTERED:
        kept.add("registration_status")
    given = item.model_dump(mode="json", include=item.model_fields_set - kept)
    changed = {k: v for k, v in given.items() if getattr(restaurant, k) != v}
    for name, value in changed.items():
        setattr(restaurant, name, value)
    if item.account_password is not None:
        password = item.account_password.get_secret_value()
        if passwords.decrypt(restaurant.account_password_encrypted) != password:
            restaurant.account_password_encrypted = passwords.encrypt(password)
            changed["account_password"] = True
    return ImportAction.UPDATED if changed else ImportAction.UNCHANGED
