"""Restaurant import: every row valid or nothing imported; passwords never stored in clear."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from regbatch import passwords
from regbatch.db.engine import session_scope
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
