"""Batches: creation (all checks first, then one job and twelve steps per restaurant), reads,
listing with a cursor, and counters derived from job rows under the batch's row lock."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    Row,
    Select,
    Table,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from regbatch.audit import Operation
from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD, JobCounts, option_problems
from regbatch.config import settings_problems
from regbatch.db.fencing import lock_batch_exclusively
from regbatch.db.models import Batch, Job, JobStep, Restaurant
from regbatch.db.oplog import append_log
from regbatch.db.restaurants import registration_config
from regbatch.errors import InvalidInputError, NotFoundError, Problem, not_one_of
from regbatch.plugins import (
    current_registry,
    graph_from_record,
    graph_record,
    recorded_step_count,
)
from regbatch.statuses import (
    BATCH_FINISHED,
    JOB_FINISHED,
    BatchStatus,
    ExecutionMode,
    JobStatus,
    StepStatus,
)
from regbatch.steps import StepGraph, current_step
from regbatch.views import BatchDetail, BatchPage, BatchReport, BatchSummary, JobView, StepView


def _check_options(
    name: str,
    restaurant_ids: Sequence[uuid.UUID],
    execution_mode: str,
    concurrency: int,
    breaker_threshold: float,
    breaker_min_finished: int,
    max_size: int,
) -> list[Problem]:
    problems = []
    if not name.strip():
        problems.append(Problem("name", "is empty; give the batch a name, e.g. 'Auckland Q4'"))
    elif len(name) > 200:
        problems.append(Problem("name", f"has {len(name)} characters; use at most 200"))
    if not restaurant_ids:
        problems.append(Problem("restaurant_ids", "is empty; pass at least one restaurant id"))
    if len(restaurant_ids) > max_size:
        problems.append(
            Problem(
                "restaurant_ids",
                f"has {len(restaurant_ids)} restaurants, more than the maximum of {max_size}; "
                "split the batch or raise REGBATCH_MAX_BATCH_SIZE",
            )
        )
    seen: set[uuid.UUID] = set()
    for rid in restaurant_ids:
        if rid in seen:
            problems.append(Problem("restaurant_ids", "is listed twice; list it once", str(rid)))
        seen.add(rid)
    problems += option_problems(
        execution_mode, concurrency, breaker_threshold, breaker_min_finished
    )
    return problems


def lock_restaurants(
    session: Session, organisation_id: uuid.UUID, restaurant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Restaurant]:
    """The organisation's restaurants among `restaurant_ids`, row-locked in id order.

    Every creation that checks the one-unfinished-batch rule takes these locks first: a second
    creation sharing a restaurant waits for the first to commit, then sees its jobs. Taking them
    in one order means two creations cannot deadlock. FOR NO KEY UPDATE queues creations without
    blocking the foreign-key checks of rows that merely point at a restaurant. (SQLite has no
    row locks; its writers are serialised by BEGIN IMMEDIATE.)
    """
    found = session.scalars(
        select(Restaurant)
        .where(Restaurant.id.in_(restaurant_ids), Restaurant.organisation_id == organisation_id)
        .order_by(Restaurant.id)
        .with_for_update(key_share=True)
    )
    return {r.id: r for r in found}


def unfinished_elsewhere(
    session: Session, restaurant_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(restaurant, batch, batch status) for each restaurant with work left in an unfinished batch.

    A restaurant is in at most one unfinished batch; take `lock_restaurants` first so that the
    answer still holds when the caller writes.
    """
    query = (
        select(Job.restaurant_id, Job.batch_id, Batch.status)
        .join(Batch, Batch.id == Job.batch_id)
        .where(Job.restaurant_id.in_(restaurant_ids))
        .where(Job.status.in_([JobStatus.PENDING, JobStatus.IN_PROGRESS]))
        .where(Batch.status.not_in(list(BATCH_FINISHED)))
        .order_by(Job.restaurant_id)
    )
    return [(rid, batch_id, status) for rid, batch_id, status in session.execute(query)]


def _active_elsewhere(session: Session, restaurant_ids: Sequence[uuid.UUID]) -> list[Problem]:
    return [
        Problem(
            "restaurant_ids",
            f"is already in unfinished batch {batch_id} ({status}); wait "
            "for it to finish or cancel it",
            str(rid),
        )
        for rid, batch_id, status in unfinished_elsewhere(session, restaurant_ids)
    ]


def create_batch(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    name: str,
    restaurant_ids: Sequence[uuid.UUID],
    settings: Mapping[str, Any] | None = None,
    overrides: Mapping[uuid.UUID, Mapping[str, Any]] | None = None,
    execution_mode: str = ExecutionMode.SEQUENTIAL,
    concurrency: int = 1,
    breaker_threshold: float = BREAKER_THRESHOLD,
    breaker_min_finished: int = BREAKER_MIN_FINISHED,
    created_by: str | None = None,
    max_size: int = 1000,
    status: BatchStatus = BatchStatus.DRAFT,
    retry_of_batch_id: uuid.UUID | None = None,
    graph: StepGraph | None = None,
) -> Batch:
    """A new batch with one job and its pending steps per restaurant, or InvalidInputError.

    Every check runs before anything is written, and the error lists every offending id.
    """
    settings = dict(settings or {})
    unique_ids = list(dict.fromkeys(restaurant_ids))
    problems = _check_options(
        name,
        restaurant_ids,
        execution_mode,
        concurrency,
        breaker_threshold,
        breaker_min_finished,
        max_size,
    )
    problems += settings_problems(settings)
    restaurants = lock_restaurants(session, organisation_id, unique_ids) if unique_ids else {}
    problems += _restaurant_problems(session, unique_ids, restaurants)
    configs: dict[uuid.UUID, dict[str, Any]] = {}
    if not _settings_invalid(problems):  # each restaurant's configuration builds on them
        configs, config_problems = _configs(restaurants, settings, overrides or {})
        problems += config_problems
    _raise_if_invalid(problems)

    batch = Batch(
        organisation_id=organisation_id,
        name=name.strip(),
        execution_mode=execution_mode,
        concurrency=concurrency,
        status=status,
        total_restaurants=len(unique_ids),
        settings=settings,
        created_by=created_by,
        retry_of_batch_id=retry_of_batch_id,
        breaker_threshold=Decimal(str(breaker_threshold)),
        breaker_min_finished=breaker_min_finished,
    )
    session.add(batch)
    session.flush()
    _add_jobs(session, batch, unique_ids, configs, graph)
    _log_created(session, batch)
    return batch


def _restaurant_problems(
    session: Session, unique_ids: Sequence[uuid.UUID], restaurants: Mapping[uuid.UUID, Restaurant]
) -> list[Problem]:
    """Restaurants that are not the organisation's, or that an unfinished batch holds."""
    if not unique_ids:
        return []
    missing = [
        Problem(
            "restaurant_ids",
            "does not exist in this organisation; check the id with `regbatch restaurants list`",
            str(rid),
        )
        for rid in unique_ids
        if rid not in restaurants
    ]
    return missing + _active_elsewhere(session, list(restaurants))


def _settings_invalid(problems: Sequence[Problem]) -> bool:
    return any(p.field == "settings" or p.field.startswith("settings.") for p in problems)


def _configs(
    restaurants: Mapping[uuid.UUID, Restaurant],
    settings: Mapping[str, Any],
    overrides: Mapping[uuid.UUID, Mapping[str, Any]],
) -> tuple[dict[uuid.UUID, dict[str, Any]], list[Problem]]:
    """Each restaurant's validated registration configuration, and the problems of the others."""
    configs: dict[uuid.UUID, dict[str, Any]] = {}
    problems: list[Problem] = []
    for rid, restaurant in restaurants.items():
        config, config_problems = registration_config(restaurant, settings, overrides.get(rid))
        problems += config_problems
        if config is not None:
            configs[rid] = config
    return configs, problems


def _raise_if_invalid(problems: list[Problem]) -> None:
    """InvalidInputError listing every problem, summarised by the restaurants they concern."""
    if not problems:
        return
    offending = sorted({p.subject for p in problems if p.subject})
    summary = "batch not created: " + (
        f"{len(offending)} restaurant(s) cannot be registered: {', '.join(offending)}"
        if offending
        else "invalid batch options"
    )
    raise InvalidInputError(summary, problems)


def _add_jobs(
    session: Session,
    batch: Batch,
    restaurant_ids: Sequence[uuid.UUID],
    configs: Mapping[uuid.UUID, dict[str, Any]],
    graph: StepGraph | None,
) -> None:
    """One pending job per restaurant, in the given order, each with its graph's pending steps
    and the handler that runs each for the restaurant's type. The batch records its graph
    (default: the one the installed plugins give)."""
    graph = graph if graph is not None else current_registry().graph
    batch.step_graph = graph_record(graph)
    job_rows, step_rows = [], []
    for position, rid in enumerate(restaurant_ids):
        job_id = uuid.uuid4()
        job_rows.append(
            {
                "id": job_id,
                "organisation_id": batch.organisation_id,
                "batch_id": batch.id,
                "restaurant_id": rid,
                "position": position,
                "status": JobStatus.PENDING,
                "execution_config": configs[rid],
                "idempotency_root": job_id,
                "dispatch_attempts": 0,
            }
        )
        kind = configs[rid]["restaurant"]["restaurant_type"]
        step_rows += [
            {
                "id": uuid.uuid4(),
                "organisation_id": batch.organisation_id,
                "job_id": job_id,
                "step_number": spec.number,
                "step_key": spec.key,
                "status": StepStatus.PENDING,
                "attempts": 0,
                "carried_over": False,
                "handler": _handler_target(graph, spec.key, kind),
            }
            for spec in graph.steps
        ]
    session.execute(insert(Job), job_rows)
    session.execute(insert(JobStep), step_rows)
    if len(job_rows) >= ANALYZE_FROM_JOBS:
        refresh_statistics(session)


# A batch this big changes the jobs and steps tables enough for PostgreSQL's planner to need
# new statistics before autovacuum's next pass (a batch runs at once): with the old ones it
# sorts all of a 10,000-restaurant batch's jobs for each detail page instead of reading 100
# from the batch/position index.
ANALYZE_FROM_JOBS = 500


def refresh_statistics(session: Session) -> None:
    """ANALYZE the jobs and steps tables (PostgreSQL; its own transaction's rows count)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE registration_jobs, registration_job_steps"))


def _handler_target(graph: StepGraph, key: str, restaurant_type: str) -> str | None:
    ref = graph.handler_for(key, restaurant_type)
    return ref.target if ref is not None else None


def _log_created(session: Session, batch: Batch) -> None:
    append_log(
        session,
        organisation_id=batch.organisation_id,
        batch_id=batch.id,
        operation=Operation.BATCH_CREATED,
        actor=batch.created_by or "system",
        details={
            "restaurants": batch.total_restaurants,
            "execution_mode": batch.execution_mode,
            "concurrency": batch.concurrency,
            "retry_of_batch_id": str(batch.retry_of_batch_id) if batch.retry_of_batch_id else None,
        },
    )


def get_batch(
    session: Session,
    batch_id: uuid.UUID,
    organisation_id: uuid.UUID | None = None,
    *,
    lock: bool = False,
) -> Batch:
    """The batch, optionally row-locked; NotFoundError when absent or in another organisation."""
    query = select(Batch).where(Batch.id == batch_id)
    if organisation_id is not None:
        query = query.where(Batch.organisation_id == organisation_id)
    if lock:
        # also waits for the runner's fenced writes in flight (db/fencing.py)
        lock_batch_exclusively(session, batch_id)
        query = query.with_for_update()
    batch = session.scalar(query)
    if batch is None:
        raise NotFoundError(
            f"batch {batch_id} does not exist; list batches with `regbatch batch list --org ORG`"
        )
    return batch


_BATCHES = cast(Table, Batch.__table__)
_LOCK_COUNTERS = (
    select(_BATCHES.c.id)
    .where(_BATCHES.c.id == bindparam("p_batch"))
    .with_for_update(key_share=True)
)


def lock_batch(session: Session, batch_id: uuid.UUID) -> None:
    """Take the batch's counters lock; every job change that moves counters takes it first.

    FOR NO KEY UPDATE: job changes queue on it, while reads and the lease's renewal go on. A
    Core statement built once, run on the session's connection (this session's pending ORM
    changes are flushed later, with the transaction's next ORM query or its commit).
    """
    session.connection().execute(_LOCK_COUNTERS, {"p_batch": batch_id})


def job_counts(session: Session, batch_id: uuid.UUID) -> JobCounts:
    """How many of the batch's jobs are in each status, counted by the database."""
    rows = dict(
        session.execute(
            select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
        ).all()
    )
    return JobCounts(
        total=sum(rows.values()),
        completed=rows.get(JobStatus.COMPLETED, 0),
        failed=rows.get(JobStatus.FAILED, 0),
        cancelled=rows.get(JobStatus.CANCELLED, 0),
        skipped=rows.get(JobStatus.SKIPPED, 0),
        in_progress=rows.get(JobStatus.IN_PROGRESS, 0),
    )


# Which batch counter counts a job in each status (one place: recomputing and moving use it).
_COUNTED_AS = {
    JobStatus.COMPLETED: "completed_restaurants",
    JobStatus.SKIPPED: "completed_restaurants",
    JobStatus.FAILED: "failed_restaurants",
    JobStatus.CANCELLED: "cancelled_restaurants",
}
# The breaker's window counters a job in each status counts in, while it finished inside the
# window (db/models.py Batch.breaker_window_finished): every finished job but a cancelled one.
_IN_WINDOW_AS = {
    JobStatus.COMPLETED: ("breaker_window_finished",),
    JobStatus.SKIPPED: ("breaker_window_finished",),
    JobStatus.FAILED: ("breaker_window_finished", "breaker_window_failed"),
}


def recompute_counters(session: Session, batch_id: uuid.UUID) -> None:
    """Set the batch's counters, the breaker's window too, from its job rows, in one UPDATE
    (after changes of many jobs). The Batch this session holds is brought up to date.

    Exact under concurrency when the caller took `lock_batch` before changing the jobs: the
    next transaction waits on the lock, then counts with a snapshot that sees this one.
    """

    def count(statuses: Sequence[str], *, in_window: bool = False) -> Any:
        query = (
            select(func.count())
            .select_from(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(statuses))
        )
        if in_window:
            start = Batch.breaker_window_start
            query = query.where(or_(start.is_(None), Job.completed_at >= start))
        return query.scalar_subquery()

    values = {
        counter: count(sorted(s for s, name in _COUNTED_AS.items() if name == counter))
        for counter in sorted(set(_COUNTED_AS.values()))
    }
    for counter in sorted({name for names in _IN_WINDOW_AS.values() for name in names}):
        statuses = sorted(s for s, names in _IN_WINDOW_AS.items() if counter in names)
        values[counter] = count(statuses, in_window=True)
    session.execute(update(Batch).where(Batch.id == batch_id).values(values))


def move_counters(
    session: Session,
    batch_id: uuid.UUID,
    old: str,
    new: str,
    *,
    was_finished_at: datetime | None,
    finished_at: datetime | None,
) -> None:
    """One job went from status `old` to `new`: move the batch's counters by one, in place, and
    the breaker's window with them. `was_finished_at` and `finished_at`: the job's completed_at
    before and after the change; it counts in the window when that time is not before the
    window's start, as `recompute_counters` judges it.

    O(1) where `recompute_counters` counts every job of the batch (at 10,000 restaurants, each
    job's start and end would count 10,000 rows). Exact because every change of one job's status
    takes the batch's counters lock first (`lock_batch`) and the counters were exact before.
    """
    table = _BATCHES
    values: dict[str, Any] = {}
    before, after = _COUNTED_AS.get(JobStatus(old)), _COUNTED_AS.get(JobStatus(new))
    if before != after:
        if before is not None:
            values[before] = table.c[before] - 1
        if after is not None:
            values[after] = table.c[after] + 1
    left, entered = _IN_WINDOW_AS.get(JobStatus(old), ()), _IN_WINDOW_AS.get(JobStatus(new), ())
    if left != entered:
        start = table.c.breaker_window_start

        def counted(at: datetime | None) -> Any:
            """1 when a job finished `at` counts in the window, else 0 (in SQL)."""
            return case((or_(start.is_(None), start <= literal(at, start.type)), 1), else_=0)

        for counter in left:
            values[counter] = table.c[counter] - counted(was_finished_at)
        for counter in entered:
            values[counter] = values.get(counter, table.c[counter]) + counted(finished_at)
    if values:
        session.connection().execute(update(table).where(table.c.id == batch_id).values(values))


def _encode_cursor(created_at: datetime, batch_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{batch_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, batch_id = raw.split("|")
        return datetime.fromisoformat(created), uuid.UUID(batch_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(
            "invalid cursor",
            [
                Problem(
                    "cursor",
                    f"{cursor!r} is not a cursor from a previous page; "
                    "pass the next_cursor value exactly, or omit it",
                )
            ],
        ) from None


def batch_fields(batch: Batch) -> dict[str, Any]:
    """What every view of one batch carries (BatchView and the views built on it), from its
    row; a dict, since `step_graph` is left out of a view's dump."""
    return {
        **batch_summary(batch).model_dump(),
        "organisation_id": batch.organisation_id,
        "settings": batch.settings,
        "created_by": batch.created_by,
        "breaker_threshold": float(batch.breaker_threshold),
        "breaker_min_finished": batch.breaker_min_finished,
        "requested_action": batch.requested_action,
        "pause_reason": batch.pause_reason,
        "error_message": batch.error_message,
        "paused_at": batch.paused_at,
        "flow_run_id": batch.flow_run_id,
        "step_graph": batch.step_graph,
        "cancelled_at": batch.cancelled_at,
        "updated_at": batch.updated_at,
    }


def batch_summary(batch: Batch) -> BatchSummary:
    """One line of a batch list, from its row."""
    return BatchSummary(
        id=batch.id,
        name=batch.name,
        status=batch.status,
        execution_mode=batch.execution_mode,
        concurrency=batch.concurrency,
        total=batch.total_restaurants,
        completed=batch.completed_restaurants,
        failed=batch.failed_restaurants,
        cancelled=batch.cancelled_restaurants,
        created_at=batch.created_at,
        started_at=batch.started_at,
        completed_at=batch.completed_at,
        retry_of_batch_id=batch.retry_of_batch_id,
        total_steps=recorded_step_count(batch.step_graph),
    )


def list_batches(
    session: Session,
    organisation_id: uuid.UUID,
    *,
    statuses: Sequence[str] = (),
    created_after: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> BatchPage:
    """The organisation's batches, newest first, filtered, one page at a time."""
    problems = [
        Problem("status", not_one_of("batch status", s, BatchStatus))
        for s in statuses
        if s not in set(BatchStatus)
    ]
    if not 1 <= limit <= 500:
        problems.append(Problem("limit", f"{limit} is out of range; use 1 to 500"))
    if problems:
        raise InvalidInputError("invalid batch list filters", problems)
    query = select(Batch).where(Batch.organisation_id == organisation_id)
    if statuses:
        query = query.where(Batch.status.in_(statuses))
    if created_after is not None:
        query = query.where(Batch.created_at > created_after)
    if cursor:
        created, last_id = _decode_cursor(cursor)
        query = query.where(tuple_(Batch.created_at, Batch.id) < tuple_(created, last_id))
    query = query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id)
    return BatchPage(items=[batch_summary(b) for b in rows], next_cursor=next_cursor)


# A job's columns as its view shows them (with its restaurant's name), read as plain rows: loading
# Job objects took about a third of a detail page's CPU (bench/README, "REST read paths").
JOB_VIEW_COLUMNS = (
    Job.id,
    Job.restaurant_id,
    Job.position,
    Job.status,
    Job.error_message,
    Job.error_details,
    Job.retry_of_job_id,
    Job.started_at,
    Job.completed_at,
    Restaurant.name.label("restaurant_name"),
)


def job_view_rows(batch_id: uuid.UUID) -> Select[Any]:
    """The batch's jobs as `job_view` reads them; the caller orders and limits."""
    return (
        select(*JOB_VIEW_COLUMNS)
        .join(Restaurant, Restaurant.id == Job.restaurant_id)
        .where(Job.batch_id == batch_id)
    )


# A step's columns as its view shows them; the summary leaves out `result_data` (for
# overviews of big batches, where the results are most of the rows' weight) and reads a NULL.
STEP_VIEW_COLUMNS = [
    column for name, column in JobStep.__table__.c.items() if name in StepView.model_fields
]
STEP_SUMMARY_COLUMNS = [
    *(c for c in STEP_VIEW_COLUMNS if c.name != "result_data"),
    null().label("result_data"),
]
# validates a list of steps in one call (a page has 1,200; one StepView(**row) each cost half
# as much again)
_STEP_VIEW_LIST = TypeAdapter(list[StepView])


def batch_detail(
    session: Session,
    batch_id: uuid.UUID,
    organisation_id: uuid.UUID | None = None,
    with_results: bool = True,
) -> BatchDetail:
    """The batch with its jobs and their steps, in three queries whatever the batch's size.

    `with_results=False` leaves out the steps' `result_data` (None in the views): the progress
    table of a big batch reads every step row, and the results are most of their weight.
    """
    batch = get_batch(session, batch_id, organisation_id)
    jobs = session.execute(job_view_rows(batch_id).order_by(Job.position)).all()
    steps_by_job = step_views(session, with_results, batch_id=batch_id)
    graph = graph_from_record(batch.step_graph, current_registry())
    return BatchDetail(
        **batch_fields(batch),
        jobs=[job_view(job, steps_by_job.get(job.id, []), graph) for job in jobs],
    )


def batch_report(session: Session, batch_id: uuid.UUID, jobs_max: int) -> BatchReport:
    """The batch as its runner reports it in Prefect: at most `jobs_max` of its jobs, with their
    steps (no results); past `jobs_max` the failed ones first, then the others in the batch's
    order; and how many it skipped.

    The runner reads it every table refresh: a 10,000-restaurant batch read whole (120,000
    step views) took the runner's memory past 1 GB.
    """
    batch = get_batch(session, batch_id)
    query = job_view_rows(batch_id)
    capped = batch.total_restaurants > jobs_max
    if capped:
        query = query.order_by(case((Job.status == JobStatus.FAILED, 0), else_=1))
    jobs = session.execute(query.order_by(Job.position).limit(jobs_max)).all()
    shown = [job.id for job in jobs] if capped else None
    steps_by_job = step_views(session, False, batch_id=batch_id, job_ids=shown)
    skipped = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.batch_id == batch_id, Job.status == JobStatus.SKIPPED)
    )
    graph = graph_from_record(batch.step_graph, current_registry())
    return BatchReport(
        **batch_fields(batch),
        jobs=[job_view(job, steps_by_job.get(job.id, []), graph) for job in jobs],
        skipped=skipped or 0,
    )


def step_views(
    session: Session,
    with_results: bool,
    *,
    batch_id: uuid.UUID | None = None,
    job_ids: Sequence[uuid.UUID] | None = None,
) -> dict[uuid.UUID, list[StepView]]:
    """The steps by job, in step order, in one query: those of `job_ids` when given, else all of
    `batch_id`'s; their results only `with_results`."""
    query = select(JobStep.job_id, *(STEP_VIEW_COLUMNS if with_results else STEP_SUMMARY_COLUMNS))
    if job_ids is not None:
        if not job_ids:
            return {}
        query = query.where(JobStep.job_id.in_(list(job_ids)))
    else:
        query = query.join(Job, Job.id == JobStep.job_id).where(Job.batch_id == batch_id)
    session.flush()  # the rows are read past the ORM, so nothing of this session's may wait
    # plain rows (no ORM result processing), validated a thousand at a time (a page's in one
    # call; a whole 10,000-restaurant batch never holds all its rows and records at once)
    rows = session.connection().execute(query.order_by(JobStep.job_id, JobStep.step_number))
    keys = list(rows.keys())  # once: a row's _asdict() rebuilds them every time
    steps_by_job: dict[uuid.UUID, list[StepView]] = {}
    for part in rows.partitions(1000):
        records = [dict(zip(keys, values, strict=True)) for values in part]
        for record, view in zip(records, _STEP_VIEW_LIST.validate_python(records), strict=True):
            steps_by_job.setdefault(record["job_id"], []).append(view)
    return steps_by_job


def job_view(job: Row[Any], steps: list[StepView], graph: StepGraph) -> JobView:
    """A job (a row of `job_view_rows`) as its view shows it, its current step read from its
    steps in the batch's graph."""
    return JobView(
        id=job.id,
        restaurant_id=job.restaurant_id,
        restaurant_name=job.restaurant_name,
        position=job.position,
        status=job.status,
        # the step it is at, from its steps (the column is the step started last)
        current_step=current_step({s.step_number: s.status for s in steps}, graph)
        if steps
        else None,
        error_message=job.error_message,
        error_details=job.error_details,
        retry_of_job_id=job.retry_of_job_id,
        started_at=job.started_at,
        completed_at=job.completed_at,
        steps=steps,
    )


def unfinished_jobs(session: Session, batch_id: uuid.UUID) -> list[Job]:
    """The batch's jobs that still have work, in the batch's order."""
    query = (
        select(Job)
        .where(Job.batch_id == batch_id, Job.status.not_in(list(JOB_FINISHED)))
        .order_by(Job.position)
    )
    return list(session.scalars(query))


def select_jobs(batch_id: uuid.UUID) -> Select[Job]:
    """The query of a batch's jobs in the batch's order."""
    return select(Job).where(Job.batch_id == batch_id).order_by(Job.position)


def latest_retry_batch_id(session: Session, batch_id: uuid.UUID) -> uuid.UUID | None:
    """The newest retry batch made from `batch_id`, if any (named in the batch's webhooks)."""
    return session.scalar(
        select(Batch.id)
        .where(Batch.retry_of_batch_id == batch_id)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(1)
    )
