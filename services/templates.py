"""Template operations: save, list, show, delete, preview, and make a batch from a template.
Each call is one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD
from regbatch.db import templates as data
from regbatch.db.batches import create_batch
from regbatch.db.engine import session_scope
from regbatch.db.models import BatchTemplate
from regbatch.db.organisations import find_organisation
from regbatch.db.types import utcnow
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus
from regbatch.settings import get_settings
from regbatch.statuses import ExecutionMode


class TemplateView(BaseModel):
    """A template as shown to people and programs."""

    id: uuid.UUID
    name: str
    city: str | None
    lead_stage: LeadStage | None
    lead_type: LeadType | None
    min_icp_score: int | None
    registration_status: RegistrationStatus | None
    limit: int
    execution_mode: ExecutionMode
    concurrency: int
    settings: dict[str, Any]
    breaker_threshold: float
    breaker_min_finished: int
    created_at: datetime
    updated_at: datetime


def _view(template: BatchTemplate) -> TemplateView:
    # the columns hold the enums' values (CHECK constraints): validated back into the enums
    return TemplateView.model_validate(
        dict(
            id=template.id,
            name=template.name,
            city=template.city,
            lead_stage=template.lead_stage,
            lead_type=template.lead_type,
            min_icp_score=template.min_icp_score,
            registration_status=template.registration_status,
            limit=template.max_restaurants,
            execution_mode=template.execution_mode,
            concurrency=template.concurrency,
            settings=template.settings,
            breaker_threshold=float(template.breaker_threshold),
            breaker_min_finished=template.breaker_min_finished,
            created_at=template.created_at,
            updated_at=template.updated_at,
        )
    )


def _org_id(session: Session, organisation: str | uuid.UUID) -> uuid.UUID:
    if isinstance(organisation, uuid.UUID):
        return organisation
    return find_organisation(session, organisation).id


def create_template(
    organisation: str | uuid.UUID,
    *,
    name: str,
    city: str | None = None,
    lead_stage: str | None = None,
    lead_type: str | None = None,
    min_icp_score: int | None = None,
    registration_status: str | None = None,
    limit: int = data.DEFAULT_LIMIT,
    execution_mode: str = ExecutionMode.SEQUENTIAL,
    concurrency: int | None = None,
    settings: Mapping[str, Any] | None = None,
    breaker_threshold: float = BREAKER_THRESHOLD,
    breaker_min_finished: int = BREAKER_MIN_FINISHED,
) -> TemplateView:
    """Save a template; nothing is written when any field is invalid.

    Concurrency defaults like a batch's: 1 in sequential mode, else REGBATCH_DEFAULT_CONCURRENCY.
    """
    if concurrency is None:
        sequential = execution_mode == ExecutionMode.SEQUENTIAL
        concurrency = 1 if sequential else get_settings().default_concurrency
    with session_scope() as session:
        template = data.create_template(
            session,
            organisation_id=_org_id(session, organisation),
            name=name,
            city=city,
            lead_stage=lead_stage,
            lead_type=lead_type,
            min_icp_score=min_icp_score,
            registration_status=registration_status,
            limit=limit,
            execution_mode=execution_mode,
            concurrency=concurrency,
            settings=settings,
            breaker_threshold=breaker_threshold,
            breaker_min_finished=breaker_min_finished,
            max_size=get_settings().max_batch_size,
        )
        return _view(template)


def list_templates(organisation: str | uuid.UUID) -> list[TemplateView]:
    """The organisation's templates by name."""
    with session_scope() as session:
        return [_view(t) for t in data.list_templates(session, _org_id(session, organisation))]


def get_template(organisation: str | uuid.UUID, template_ref: str | uuid.UUID) -> TemplateView:
    """The template with this id or name in the organisation."""
    with session_scope() as session:
        return _view(data.get_template(session, _org_id(session, organisation), template_ref))


def delete_template(organisation: str | uuid.UUID, template_ref: str | uuid.UUID) -> TemplateView:
    """Remove the template and return what it was; the batches made from it stay."""
    with session_scope() as session:
        return _view(data.delete_template(session, _org_id(session, organisation), template_ref))


def preview_template(
    organisation: str | uuid.UUID, template_ref: str | uuid.UUID
) -> list[dict[str, Any]]:
    """The restaurants the template would pick now, in the order a batch would get them."""
    with session_scope() as session:
        template = data.get_template(session, _org_id(session, organisation), template_ref)
        return data.preview_restaurants(session, template)


def create_batch_from_template(
    organisation: str | uuid.UUID, template_ref: str | uuid.UUID, *, created_by: str | None
) -> uuid.UUID | None:
    """A draft batch "<template name> <YYYY-MM-DD HH:MM>" (UTC) of the restaurants the template
    picks now, with its options; None when nothing matches.

    The template's row stays locked until the batch is written, so two runs of one template at
    the same time (a schedule firing twice) cannot pick the same restaurants.
    """
    with session_scope() as session:
        org_id = _org_id(session, organisation)
        template = data.get_template(session, org_id, template_ref, lock=True)
        restaurant_ids = data.matching_restaurants(session, template)
        if not restaurant_ids:
            return None
        batch = create_batch(
            session,
            organisation_id=org_id,
            name=f"{template.name} {utcnow():%Y-%m-%d %H:%M}",
            restaurant_ids=restaurant_ids,
            settings=template.settings,
            execution_mode=template.execution_mode,
            concurrency=template.concurrency,
            breaker_threshold=float(template.breaker_threshold),
            breaker_min_finished=template.breaker_min_finished,
            created_by=created_by,
            max_size=get_settings().max_batch_size,
        )
        return batch.id
