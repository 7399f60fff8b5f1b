"""Restaurant import: every row valid or nothing imported; passwords never stored in clear."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from regbatch import passwords
from regbatch.db.engine import session_scope
from regbatch.db.imports import PROBLEMS_KEPT, upsert_restaurants
from regbatch.db.models import Restaurant
from regbatch.db.restaurants import import_restaurants, list_restaurants
from regbatch.errors import InvalidInputError
from tests.factories import restaurant_row, sample_rows


def count(org_id: uuid.UUID) -> int:
    with session_scope() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Restaurant)
                .where(Restaurant.organisation_id == org_id)
            )
            or 0
        )


def test_import_stores_every_sample(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        imported = import_restaurants(session, org_id, sample_rows())
    assert len(imported) == len(sample_rows()) == count(org_id)


def test_one_bad_row_imports_nothing_and_every_bad_row_is_reported(org_id: uuid.UUID) -> None:
    rows = [
        restaurant_row(0),
        restaurant_row(1, email="nope"),
        restaurant_row(2),
        restaurant_row(3, icp_score=12, colour="#fff"),
    ]
    with pytest.raises(InvalidInputError) as caught, session_scope() as session:
        import_restaurants(session, org_id, rows)
    problems = {(p.subject, p.field) for p in caught.value.problems}
    assert ("row 2", "email") in problems
    assert ("row 4", "icp_score") in problems
    assert ("row 4", "colour") in problems
    assert "2 of 4 rows are invalid; nothing was imported" in str(caught.value)
    assert count(org_id) == 0


def test_passwords_are_encrypted_and_generated_when_missing(org_id: uuid.UUID) -> None:
    given = "Correct-Horse-Battery-9"
    with session_scope() as session:
        with_password, without = import_restaurants(
            session, org_id, [restaurant_row(0, account_password=given), restaurant_row(1)]
        )
        stored_given = with_password.account_password_encrypted
        stored_generated = without.account_password_encrypted
    assert given not in stored_given
    assert passwords.decrypt(stored_given) == given
    generated = passwords.decrypt(stored_generated)
    assert len(generated) >= 16 and generated != given


def test_list_filters(org_id: uuid.UUID) -> None:
    with session_scope() as session:
        import_restaurants(
            session,
            org_id,
            [
                restaurant_row(0, city="Auckland", lead_stage="hot", icp_score=9),
                restaurant_row(1, city="Auckland", lead_stage="cold", icp_score=3),
                restaurant_row(2, city="Dunedin", lead_stage="hot", icp_score=7),
            ],
        )
        hot_auckland = list_restaurants(session, org_id, city="Auckland", lead_stage="hot")
        good = list_restaurants(session, org_id, min_icp_score=7)
    assert [r.icp_score for r in hot_auckland] == [9]
    assert [r.icp_score for r in good] == [9, 7]


def _upsert(org_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[tuple[str, uuid.UUID]]:
    with session_scope() as session:
        outcomes = upsert_restaurants(session, org_id, enumerate(rows, start=1))
    assert [o.row for o in outcomes] == list(range(1, len(rows) + 1))
    return [(o.action, o.id) for o in outcomes]


def test_importing_twice_matches_by_email_and_reports_each_row(org_id: uuid.UUID) -> None:
    rows = [restaurant_row(0), restaurant_row(1), restaurant_row(2)]
    first = _upsert(org_id, rows)
    assert [a for a, _ in first] == ["created"] * 3
    rows[1] = {**rows[1], "email": rows[1]["email"].upper(), "cuisine": "Fusion"}
    second = _upsert(org_id, rows)
    assert second == [
        ("unchanged", first[0][1]),
        ("updated", first[1][1]),
        ("unchanged", first[2][1]),
    ]
    assert count(org_id) == 3
    with session_scope() as session:
        updated = session.get(Restaurant, first[1][1])
        assert updated is not None and updated.cuisine == "Fusion"


def test_external_id_matches_before_email_and_a_row_updates_only_its_columns(
    org_id: uuid.UUID,
) -> None:
    (created,) = _upsert(org_id, [restaurant_row(0, external_id="crm-1", icp_score=4)])
    # new email, same external id: the same restaurant; columns the row leaves out keep values
    assert _upsert(
        org_id, [{"external_id": "crm-1", "name": "Renamed", "email": "new@x.co.nz"}]
    ) == [("updated", created[1])]
    with session_scope() as session:
        restaurant = session.get(Restaurant, created[1])
        assert restaurant is not None
        assert (restaurant.name, restaurant.email, restaurant.icp_score) == (
            "Renamed",
            "new@x.co.nz",
            4,
        )
    # a password given again and equal is no change; a new one is
    assert _upsert(org_id, [{"external_id": "crm-1", "name": "Renamed"}]) == [
        ("unchanged", created[1])
    ]
    assert _upsert(
        org_id,
        [{"external_id": "crm-1", "name": "Renamed", "account_password": "A-new-password-9"}],
    ) == [("updated", created[1])]
    # a row with another external id and the same email is another restaurant
    other = _upsert(org_id, [{"external_id": "crm-2", "name": "Other", "email": "new@x.co.nz"}])
    assert other[0][0] == "created" and other[0][1] != created[1]


def _statuses(ids: list[uuid.UUID]) -> list[str]:
    with session_scope() as session:
        return [r.registration_status for i in ids if (r := session.get(Restaurant, i))]


def test_a_reimport_keeps_the_registration_status_that_registration_recorded(
    org_id: uuid.UUID,
) -> None:
    # the sample file states "unregistered" on every row
    rows = [restaurant_row(i, registration_status="unregistered") for i in range(3)]
    ids = [restaurant_id for _, restaurant_id in _upsert(org_id, rows)]
    with session_scope() as session:
        for restaurant_id, status in zip(ids[:2], ("registered", "failed"), strict=True):
            restaurant = session.get(Restaurant, restaurant_id)
            assert restaurant is not None
            restaurant.registration_status = status
    assert _upsert(org_id, rows) == [("unchanged", i) for i in ids]
    assert _statuses(ids) == ["registered", "failed", "unregistered"]
    # other columns still update; an unregistered restaurant takes the row's status
    rows = [{**row, "cuisine": "Fusion", "registration_status": "registered"} for row in rows]
    assert _upsert(org_id, rows) == [("updated", i) for i in ids]
    assert _statuses(ids) == ["registered", "failed", "registered"]


def test_an_upsert_with_a_bad_or_repeated_row_writes_nothing(org_id: uuid.UUID) -> None:
    good = restaurant_row(0)
    rows = [good, restaurant_row(1, email=good["email"].title()), restaurant_row(2, icp_score=11)]
    with pytest.raises(InvalidInputError, match="2 of 3 rows are invalid") as caught:
        _upsert(org_id, rows)
    assert str(caught.value.problems[0]) == (
        f"row 2: email: {good['email'].lower()!r} is also row 1; list each restaurant once"
    )
    assert count(org_id) == 0


def test_an_email_naming_two_restaurants_is_refused(org_id: uuid.UUID) -> None:
    row = restaurant_row(0)
    with session_scope() as session:  # two restaurants with one email (the old import doubled)
        import_restaurants(session, org_id, [row, {**row, "name": "Twin"}])
    with pytest.raises(InvalidInputError) as caught:
        _upsert(org_id, [row])
    assert "matches 2 restaurants" in str(caught.value)
    assert "add an external_id column to tell them apart" in str(caught.value)
    assert count(org_id) == 2


def test_a_file_of_bad_rows_lists_the_first_problems_and_counts_every_bad_row(
    org_id: uuid.UUID,
) -> None:
    rows = [restaurant_row(i, icp_score=11) for i in range(PROBLEMS_KEPT + 10)]
    with pytest.raises(InvalidInputError) as caught:
        _upsert(org_id, rows)
    assert caught.value.summary == (
        f"{PROBLEMS_KEPT + 10} of {PROBLEMS_KEPT + 10} rows are invalid; nothing was imported, "
        f"fix them and import again (the first {PROBLEMS_KEPT} shown)"
    )
    assert len(caught.value.problems) == PROBLEMS_KEPT
    assert count(org_id) == 0
