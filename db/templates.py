"""Batch templates: saved restaurant selections of an organisation, and the restaurants they
pick now ("the next 10 hot leads from Auckland")."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD, option_problems
from regbatch.config import settings_problems
from regbatch.db.models import BatchTemplate, Restaurant
from regbatch.db.restaurants import apply_selection, in_unfinished_batch
from regbatch.errors import InvalidInputError, NotFoundError, Problem
from regbatch.restaurant import RegistrationStatus
from regbatch.selection import RestaurantSelection
from regbatch.statuses import ExecutionMode

NAME_MAX = 120  # leaves room for the " YYYY-MM-DD HH:MM" of the batches' names (200 at most)
LIMIT_MAX = 1000
DEFAULT_LIMIT = 10


def _filter_problems(selection: RestaurantSelection, max_size: int) -> list[Problem]:
    problems = [p for p in selection.problems() if p.field != "limit"]  # checked below
    limit = selection.limit or 0
    if selection.registration_status == RegistrationStatus.REGISTERED:
        problems.append(
            Problem(
                "registration_status",
                "'registered' never matches: templates pick restaurants not yet registered; "
                "use unregistered, in_progress or failed, or leave it out",
            )
        )
    if not 1 <= limit <= LIMIT_MAX:
        problems.append(Problem("limit", f"{limit} is out of range; use 1 to {LIMIT_MAX}"))
    elif limit > max_size:
        problems.append(
            Problem(
                "limit",
                f"{limit} is above the maximum batch size of {max_size}; "
                "lower it or raise REGBATCH_MAX_BATCH_SIZE",
            )
        )
    return problems


def create_template(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    name: str,
    city: str | None = None,
    lead_stage: str | None = None,
    lead_type: str | None = None,
    min_icp_score: int | None = None,
    registration_status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    execution_mode: str = ExecutionMode.SEQUENTIAL,
    concurrency: int = 1,
    settings: Mapping[str, Any] | None = None,
    breaker_threshold: float = BREAKER_THRESHOLD,
    breaker_min_finished: int = BREAKER_MIN_FINISHED,
    max_size: int = LIMIT_MAX,
) -> BatchTemplate:
    """A new template, or InvalidInputError listing every problem (nothing written then)."""
    name = name.strip()
    city = (city or "").strip() or None
    problems = _name_problems(session, organisation_id, name)
    selection = RestaurantSelection(
        city=city,
        lead_stage=lead_stage,
        lead_type=lead_type,
        min_icp_score=min_icp_score,
        registration_status=registration_status,
        limit=limit,
    )
    problems += _filter_problems(selection, max_size)
    problems += option_problems(
        execution_mode, concurrency, breaker_threshold, breaker_min_finished
    )
    problems += _template_settings_problems(settings)
    if problems:
        raise InvalidInputError("template not created: invalid template", problems)
    template = BatchTemplate(
        organisation_id=organisation_id,
        name=name,
        city=city,
        lead_stage=lead_stage,
        lead_type=lead_type,
        min_icp_score=min_icp_score,
        registration_status=registration_status,
        max_restaurants=limit,
        execution_mode=execution_mode,
        concurrency=concurrency,
        settings=dict(settings or {}),
        breaker_threshold=Decimal(str(breaker_threshold)),
        breaker_min_finished=breaker_min_finished,
    )
    _add_template(session, template)
    return template


def _name_problems(session: Session, organisation_id: uuid.UUID, name: str) -> list[Problem]:
    """A template's name is given, short enough, and not taken in the organisation."""
    if not name:
        return [Problem("name", "is empty; name the template, e.g. 'Auckland hot leads'")]
    if len(name) > NAME_MAX:
        return [Problem("name", f"has {len(name)} characters; use at most {NAME_MAX}")]
    if _find(session, organisation_id, name) is not None:
        return [_name_taken(name)]
    return []


def _name_taken(name: str) -> Problem:
    return Problem("name", f"{name!r} is taken in this organisation; choose another")


def _template_settings_problems(settings: Mapping[str, Any] | None) -> list[Problem]:
    if settings is not None and not isinstance(settings, Mapping):
        return [Problem("settings", f"is a {type(settings).__name__}; give an object of settings")]
    return settings_problems(dict(settings or {}))


def _add_template(session: Session, template: BatchTemplate) -> None:
    """Insert the template; a name a concurrent create took meanwhile is an InvalidInputError."""
    try:
        with session.begin_nested():
            session.add(template)
    except IntegrityError:  # a concurrent create took the name between our check and insert
        raise InvalidInputError(
            "template not created: invalid template", [_name_taken(template.name)]
        ) from None


def list_templates(session: Session, organisation_id: uuid.UUID) -> list[BatchTemplate]:
    """The organisation's templates by name."""
    query = select(BatchTemplate).where(BatchTemplate.organisation_id == organisation_id)
    return list(session.scalars(query.order_by(BatchTemplate.name)))


def _find(session: Session, organisation_id: uuid.UUID, name: str) -> BatchTemplate | None:
    return session.scalar(
        select(BatchTemplate).where(
            BatchTemplate.organisation_id == organisation_id, BatchTemplate.name == name
        )
    )


def get_template(
    session: Session,
    organisation_id: uuid.UUID,
    ref: str | uuid.UUID,
    *,
    lock: bool = False,
) -> BatchTemplate:
    """The organisation's template with id or name `ref`; NotFoundError otherwise."""
    query = select(BatchTemplate).where(BatchTemplate.organisation_id == organisation_id)
    try:
        template_id = ref if isinstance(ref, uuid.UUID) else uuid.UUID(ref)
    except ValueError:
        query = query.where(BatchTemplate.name == ref)
    else:
        query = query.where(BatchTemplate.id == template_id)
    if lock:
        query = query.with_for_update()
    template = session.scalar(query)
    if template is None:
        raise NotFoundError(
            f"template {str(ref)!r} does not exist in this organisation; list them with "
            "`regbatch template list --org ORG`"
        )
    return template


def delete_template(
    session: Session, organisation_id: uuid.UUID, ref: str | uuid.UUID
) -> BatchTemplate:
    """Remove the template and return it (batches made from it stay)."""
    template = get_template(session, organisation_id, ref)
    session.delete(template)
    session.flush()
    return template


def selection_of(template: BatchTemplate) -> RestaurantSelection:
    """The template's restaurant filter."""
    return RestaurantSelection(
        city=template.city,
        lead_stage=template.lead_stage,
        lead_type=template.lead_type,
        min_icp_score=template.min_icp_score,
        registration_status=template.registration_status,
        limit=template.max_restaurants,
    )


def _matching(template: BatchTemplate, *columns: Any) -> Select[Any]:
    query = select(*columns).where(
        Restaurant.organisation_id == template.organisation_id,
        Restaurant.registration_status != RegistrationStatus.REGISTERED,
        ~in_unfinished_batch(),
    )
    return apply_selection(query, selection_of(template))


def matching_restaurants(session: Session, template: BatchTemplate) -> list[uuid.UUID]:
    """Ids of the restaurants the template picks now: matching its filters, not registered, in
    no unfinished batch; best ICP score first, at most its limit."""
    return list(session.scalars(_matching(template, Restaurant.id)))


PREVIEW_COLUMNS = ("name", "city", "lead_stage", "lead_type", "icp_score", "registration_status")


def preview_restaurants(session: Session, template: BatchTemplate) -> list[dict[str, Any]]:
    """The restaurants `matching_restaurants` picks, as plain rows for display."""
    columns = [Restaurant.id, *(getattr(Restaurant, c) for c in PREVIEW_COLUMNS)]
    return [
        {"id": str(row[0]), **dict(zip(PREVIEW_COLUMNS, row[1:], strict=True))}
        for row in session.execute(_matching(template, *columns))
    ]
