"""The migrated schema on PostgreSQL: migrations both ways, CHECKs equal to the enums, the
database itself refusing bad rows, cascades, and models that match the migrations."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from enum import Enum
from typing import cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import DateTime, Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from regbatch.audit import Operation
from regbatch.db import migrate
from regbatch.db.models import Base
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus, RestaurantType, Theme
from regbatch.statuses import BatchStatus, ExecutionMode, JobStatus, RequestedAction, StepStatus
from tests.conftest import drop_schema, make_schema
from tests.settings_env import settings_env

TABLES = {
    "organisations",
    "api_keys",
    "restaurants",
    "registration_batch_jobs",
    "registration_jobs",
    "registration_job_steps",
    "batch_operation_logs",
    "idempotency_keys",
}


@pytest.fixture()
def empty_schema() -> Iterator[str]:
    schema = f"regbatch_empty_{secrets.token_hex(4)}"
    yield make_schema(schema)
    from regbatch.db.engine import dispose_engines

    dispose_engines()
    drop_schema(schema)


@pytest.fixture()
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


def test_migrations_run_up_and_down_on_an_empty_database(empty_schema: str) -> None:
    migrate.upgrade(empty_schema)
    assert migrate.current_revision(empty_schema) == migrate.head_revision()
    check = create_engine(empty_schema)
    assert set(inspect(check).get_table_names()) >= TABLES
    migrate.downgrade(empty_schema)
    assert set(inspect(check).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_schema)  # and up again after coming down
    assert set(inspect(check).get_table_names()) >= TABLES
    check.dispose()


def test_models_match_the_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _check_values(engine: Engine, table: str, column: str) -> set[str]:
    query = text("""
        SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema()
        WHERE t.relname = :table AND c.contype = 'c' AND c.conname = :name
    """)
    with engine.connect() as connection:
        definition = connection.execute(
            query, {"table": table, "name": f"ck_{table}_{column}_valid"}
        ).scalar_one()
    return set(re.findall(r"'([^']*)'::", definition))


@pytest.mark.parametrize(
    ("table", "column", "enum"),
    [
        ("registration_batch_jobs", "status", BatchStatus),
        ("registration_batch_jobs", "execution_mode", ExecutionMode),
        ("registration_batch_jobs", "requested_action", RequestedAction),
        ("registration_jobs", "status", JobStatus),
        ("registration_job_steps", "status", StepStatus),
        ("batch_operation_logs", "operation", Operation),
        ("restaurants", "lead_type", LeadType),
        ("restaurants", "lead_stage", LeadStage),
        ("restaurants", "registration_status", RegistrationStatus),
        ("restaurants", "restaurant_type", RestaurantType),
        ("restaurants", "theme", Theme),
    ],
)
def test_enums_equal_the_migrated_check_lists(
    engine: Engine, table: str, column: str, enum: type[Enum]
) -> None:
    assert _check_values(engine, table, column) == {m.value for m in enum}


@pytest.fixture()
def batch_rows(engine: Engine) -> dict[str, uuid.UUID]:
    """An organisation, a restaurant, a batch, a job and one step, inserted with plain SQL."""
    ids = {k: uuid.uuid4() for k in ("org", "restaurant", "batch", "job", "step")}
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO organisations (id, name, created_at, updated_at) "
                "VALUES (:org, :name, now(), now())"
            ),
            {"org": ids["org"], "name": f"org-{ids['org']}"},
        )
        c.execute(
            text("""INSERT INTO restaurants (id, organisation_id, name, country,
            restaurant_type, theme, lead_type, lead_stage, icp_score, registration_status,
            account_password_encrypted, created_at, updated_at) VALUES (:restaurant, :org, 'R',
            'NZ', 'cafe', 'light', 'inbound', 'hot', 5, 'unregistered', 'x', now(), now())"""),
            ids,
        )
        c.execute(
            text("""INSERT INTO registration_batch_jobs (id, organisation_id, name,
            execution_mode, concurrency, status, total_restaurants, completed_restaurants,
            failed_restaurants, cancelled_restaurants, settings, breaker_threshold,
            breaker_min_finished, created_at, updated_at) VALUES (:batch, :org, 'B', 'sequential',
            1, 'draft', 1, 0, 0, 0, '{}', 0.5, 3, now(), now())"""),
            ids,
        )
        c.execute(
            text("""INSERT INTO registration_jobs (id, organisation_id, batch_id,
            restaurant_id, position, status, execution_config, idempotency_root,
            dispatch_attempts, created_at, updated_at) VALUES (:job, :org, :batch, :restaurant, 0,
            'pending', '{}', :job, 0, now(), now())"""),
            ids,
        )
        c.execute(
            text("""INSERT INTO registration_job_steps (id, organisation_id, job_id,
            step_number, step_key, status, attempts, carried_over, updated_at) VALUES (:step, :org,
            :job, 1, 'account_registration', 'pending', 0, false, now())"""),
            ids,
        )
        c.execute(
            text("""INSERT INTO batch_operation_logs (organisation_id, batch_id, job_id,
            operation, actor, details, created_at) VALUES (:org, :batch, :job, 'batch_created',
            'system', '{}', now())"""),
            ids,
        )
    return ids


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            "UPDATE registration_batch_jobs SET status = 'running' WHERE id = :batch",
            "ck_registration_batch_jobs_status_valid",
        ),
        (
            "UPDATE registration_jobs SET status = 'done' WHERE id = :job",
            "ck_registration_jobs_status_valid",
        ),
        (
            "UPDATE registration_job_steps SET status = 'ok' WHERE id = :step",
            "ck_registration_job_steps_status_valid",
        ),
        (
            "UPDATE registration_job_steps SET step_number = 1000 WHERE id = :step",
            "ck_registration_job_steps_step_number_range",
        ),
        (
            "UPDATE registration_batch_jobs SET completed_restaurants = 2 WHERE id = :batch",
            "ck_registration_batch_jobs_counters_consistent",
        ),
        (
            "UPDATE restaurants SET icp_score = 11 WHERE id = :restaurant",
            "ck_restaurants_icp_score_range",
        ),
        (
            """INSERT INTO registration_jobs (id, organisation_id, batch_id, restaurant_id, position,
            status, execution_config, idempotency_root, dispatch_attempts, created_at, updated_at)
            VALUES (gen_random_uuid(), :org, :batch, :restaurant, 1, 'pending', '{}',
            gen_random_uuid(), 0, now(), now())""",
            "uq_registration_jobs_batch_restaurant",
        ),
        (
            """INSERT INTO registration_job_steps (id, organisation_id, job_id, step_number, step_key,
            status, attempts, carried_over, updated_at) VALUES (gen_random_uuid(), :org, :job, 1,
            'account_registration', 'pending', 0, false, now())""",
            "uq_registration_job_steps_job_step",
        ),
    ],
)
def test_the_database_rejects_bad_rows(
    engine: Engine, batch_rows: dict, statement: str, constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint), engine.begin() as c:
        c.execute(text(statement), batch_rows)


def test_operation_log_rows_cannot_be_updated(engine: Engine, batch_rows: dict) -> None:
    with pytest.raises(Exception, match="append-only"), engine.begin() as c:
        c.execute(
            text("UPDATE batch_operation_logs SET actor = 'someone' WHERE batch_id = :batch"),
            batch_rows,
        )


def test_deleting_a_batch_cascades_to_jobs_steps_and_logs(engine: Engine, batch_rows: dict) -> None:
    with engine.begin() as c:
        c.execute(text("DELETE FROM registration_batch_jobs WHERE id = :batch"), batch_rows)
    with engine.connect() as c:
        for table, column, key in (
            ("registration_jobs", "id", "job"),
            ("registration_job_steps", "id", "step"),
            ("batch_operation_logs", "batch_id", "batch"),
        ):
            count = c.execute(
                text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": batch_rows[key]}
            ).scalar_one()
            assert count == 0, table
        # the restaurant stays: it is an input, not part of the batch
        assert (
            c.execute(
                text("SELECT count(*) FROM restaurants WHERE id = :restaurant"), batch_rows
            ).scalar_one()
            == 1
        )


def test_timestamps_are_timezone_aware(engine: Engine) -> None:
    columns = inspect(engine).get_columns("registration_job_steps")
    started = next(c for c in columns if c["name"] == "started_at")
    assert cast(DateTime, started["type"]).timezone is True


def test_upgrading_fills_the_breaker_window_from_the_jobs(empty_schema: str, pg_url: str) -> None:
    """Revision 0009 adds the breaker's window counters: existing batches get what the breaker
    counted from their job rows (jobs finished since the window opened, all when it never did)."""
    from regbatch.db import batches, lifecycle
    from regbatch.db.engine import dispose_engines, session_scope
    from regbatch.db.jobs import get_job, set_job_status
    from tests.factories import make_org, make_restaurants

    def windows() -> dict[uuid.UUID, tuple[int, int]]:
        with create_engine(empty_schema).connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT id, breaker_window_finished, breaker_window_failed "
                    "FROM registration_batch_jobs"
                )
            )
            return {row[0]: (row[1], row[2]) for row in rows}

    with settings_env({"REGBATCH_DATABASE_URL": empty_schema}):
        dispose_engines()
        try:
            migrate.upgrade(empty_schema)
            with session_scope() as session:
                org = make_org(session)
                made = {}
                for name, started in (("never started", False), ("resumed", True)):
                    ids = make_restaurants(session, org, 3)
                    made[name] = batches.create_batch(
                        session, organisation_id=org, name=name, restaurant_ids=ids
                    ).id
                    if started:
                        lifecycle.begin_run(session, made[name], "tests", lease_seconds=60)
            for batch_id in made.values():
                with session_scope() as session:
                    jobs = batches.unfinished_jobs(session, batch_id)
                    job_ids = [j.id for j in jobs[:2]]
                for job_id, outcome in zip(
                    job_ids, (JobStatus.FAILED, JobStatus.COMPLETED), strict=True
                ):
                    for status in (JobStatus.IN_PROGRESS, outcome):
                        with session_scope() as session:
                            set_job_status(session, get_job(session, job_id), status)
            with session_scope() as session:  # the resumed one: a new window, then one failure
                lifecycle.pause_now(session, made["resumed"], "tests", "tests")
                lifecycle.resume(session, made["resumed"], "tests")
            with session_scope() as session:
                last = batches.unfinished_jobs(session, made["resumed"])[0].id
            for status in (JobStatus.IN_PROGRESS, JobStatus.FAILED):
                with session_scope() as session:
                    set_job_status(session, get_job(session, last), status)
            moved = windows()
            assert moved == {made["never started"]: (2, 1), made["resumed"]: (1, 1)}
            dispose_engines()
            migrate.downgrade(empty_schema, "0008")
            migrate.upgrade(empty_schema)
            assert windows() == moved
        finally:
            dispose_engines()


def test_a_steps_inputs_are_read_through_its_jobs_index_however_stale_the_statistics(
    empty_schema: str,
) -> None:
    """A step's start reads its job's results. Statistics taken when a big batch was made (all
    of its steps pending) must not make that read scan every completed step of the table, as a
    filter on the status once did: 44 ms per step's start at 6,000 of 10,000 restaurants."""
    import json

    from sqlalchemy.orm import Session

    from regbatch.db import batches
    from regbatch.db.step_statements import step_statements
    from tests.factories import make_org, make_restaurants

    migrate.upgrade(empty_schema)
    engine = create_engine(empty_schema)
    try:
        with Session(engine) as session, session.begin():
            org = make_org(session)
            ids = make_restaurants(session, org, batches.ANALYZE_FROM_JOBS)
            batch_id = batches.create_batch(
                session, organisation_id=org, name="big", restaurant_ids=ids
            ).id
        with engine.begin() as connection:  # most of it done since: the statistics do not know
            job_id = connection.scalar(
                text("SELECT id FROM registration_jobs WHERE batch_id = :b ORDER BY position"),
                {"b": batch_id},
            )
            connection.execute(
                text(
                    "UPDATE registration_job_steps SET status = 'completed' WHERE job_id IN "
                    "(SELECT id FROM registration_jobs WHERE batch_id = :b AND position > 50)"
                ),
                {"b": batch_id},
            )
            statement = step_statements("postgresql").results.compile(dialect=connection.dialect)
            plan = connection.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {statement}", {**statement.params, "p_job": job_id}
            ).scalar_one()
    finally:
        engine.dispose()
    indexes = re.findall(r'"Index Name": "([^"]+)"', json.dumps(plan))
    assert indexes == ["uq_registration_job_steps_job_step"], json.dumps(plan, indent=1)
