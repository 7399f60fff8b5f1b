"""The same migrations run on SQLite, the embedded default, both ways."""

from pathlib import Path

from sqlalchemy import create_engine, inspect

from regbatch.db import migrate
from regbatch.db.engine import dispose_engines, session_scope
from regbatch.db.organisations import create_organisation
from tests.integration.test_schema import TABLES


def test_migrations_run_on_sqlite_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with session_scope(url) as session:
        org = create_organisation(session, "Embedded Ltd")
    with session_scope(url) as session:
        from regbatch.db.models import Organisation

        stored = session.get(Organisation, org.id)
        assert stored is not None and stored.created_at.tzinfo is not None
    migrate.downgrade(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    dispose_engines()


def test_idempotency_keys_are_claimed_once_on_sqlite(tmp_path: Path) -> None:
    from regbatch.db import idempotency
    from regbatch.db.types import utcnow

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    migrate.upgrade(url)
    with session_scope(url) as session:
        org = create_organisation(session, "Embedded Keys Ltd").id
    request = idempotency.KeyedRequest(org, "k-1", "POST", "/registrations", "0" * 64)
    with session_scope(url) as session:
        claimed = idempotency.claim(session, request, utcnow())
        assert isinstance(claimed, idempotency.Claimed)
    with session_scope(url) as session:
        assert isinstance(idempotency.claim(session, request, utcnow()), idempotency.InProgress)
        answer = idempotency.Answer(201, '{"batch_id": "b"}')
        assert idempotency.complete(session, claimed.claim_id, answer, utcnow())
    with session_scope(url) as session:
        assert idempotency.claim(session, request, utcnow()) == idempotency.Answered(answer)
    dispose_engines()


def test_batch_lists_and_pages_on_sqlite(tmp_path: Path) -> None:
    """The list's keyset cursor, current steps, previews and job pages run on SQLite too."""
    from regbatch.db import batch_pages, overview
    from regbatch.db.batches import create_batch
    from tests.factories import make_restaurants

    url = f"sqlite:///{tmp_path / 'pages.db'}"
    migrate.upgrade(url)
    with session_scope(url) as session:
        org = create_organisation(session, "Embedded Pages Ltd").id
        made = [
            create_batch(
                session,
                organisation_id=org,
                name=f"b{i}",
                restaurant_ids=make_restaurants(session, org, 2),
            ).id
            for i in range(3)
        ]
    with session_scope(url) as session:
        for sort in ("created", "name", "finished", "size"):
            first = overview.search_batches(session, org, sort=sort, limit=2, include_jobs=True)
            assert first.total == 3 and first.next_cursor and len(first.items[0].jobs or []) == 2
            rest = overview.search_batches(
                session, org, sort=sort, limit=2, cursor=first.next_cursor
            )
            assert {b.id for b in first.items + rest.items} == set(made), sort
        page = batch_pages.batch_jobs_page(session, made[0], org, limit=1)
        assert page.jobs_total == 2 and page.next_cursor and len(page.jobs[0].steps) == 12
    dispose_engines()


def test_migrating_a_populated_database_down_and_up_keeps_every_row(tmp_path: Path) -> None:
    """Batch mode rebuilds a table (copy, drop, rename) to change it on SQLite; with foreign
    keys on, the drop deleted every job, step and log row of the batches. Down past the
    rebuilds of 0006 and 0009 and up again: every row is there, the breaker's window is
    counted again from the jobs, and foreign keys are on again afterwards."""
    from sqlalchemy import text

    from regbatch.db import batches, lifecycle
    from regbatch.db.engine import get_engine
    from regbatch.db.jobs import get_job, set_job_status
    from regbatch.statuses import JobStatus
    from tests.factories import make_restaurants

    url = f"sqlite:///{tmp_path / 'populated.db'}"
    migrate.upgrade(url)
    with session_scope(url) as session:
        org = create_organisation(session, "Populated Ltd").id
        ids = make_restaurants(session, org, 3)
        batch_id = batches.create_batch(
            session, organisation_id=org, name="kept", restaurant_ids=ids
        ).id
        lifecycle.begin_run(session, batch_id, "tests", lease_seconds=60)
    with session_scope(url) as session:
        first, second = (j.id for j in batches.unfinished_jobs(session, batch_id)[:2])
    for job_id, outcome in ((first, JobStatus.FAILED), (second, JobStatus.COMPLETED)):
        for status in (JobStatus.IN_PROGRESS, outcome):
            with session_scope(url) as session:
                set_job_status(session, get_job(session, job_id), status)
    tables = ("registration_batch_jobs", "registration_jobs", "registration_job_steps")

    def rows() -> dict[str, int]:
        with get_engine(url).connect() as connection:
            found = {t: connection.scalar(text(f"SELECT count(*) FROM {t}")) for t in tables}
            found["batch_operation_logs"] = connection.scalar(
                text("SELECT count(*) FROM batch_operation_logs")
            )
            return found

    def window() -> tuple[int, int]:
        with get_engine(url).connect() as connection:
            finished, failed = connection.execute(
                text(
                    "SELECT breaker_window_finished, breaker_window_failed "
                    "FROM registration_batch_jobs"
                )
            ).one()
            return int(finished), int(failed)

    before = rows()
    assert before["registration_jobs"] == 3 and before["registration_job_steps"] == 36
    assert window() == (2, 1)
    migrate.downgrade(url, "0005")
    assert rows() == before
    migrate.upgrade(url)
    assert rows() == before and window() == (2, 1)
    with get_engine(url).connect() as connection:
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1
    dispose_engines()
