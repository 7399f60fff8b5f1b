"""Console pages of templates (list, create from a filter, run, delete) and webhooks (list, add,
remove, the delivery log), over services/templates.py and services/webhooks.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from regbatch.api.console.actions import perform
from regbatch.api.console.auth import CheckedDep, SessionDep
from regbatch.api.console.render import page
from regbatch.errors import InvalidInputError, Problem, RegbatchError
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus
from regbatch.services import templates, webhooks
from regbatch.services.overview import webhook_attempts
from regbatch.statuses import ExecutionMode
from regbatch.webhooks import WebhookEvent

router = APIRouter(prefix="/console")
Text = Annotated[str, Form(max_length=500)]


def optional_int(value: str, field: str, problems: list[Problem]) -> int | None:
    """The form field as an int, None when empty; a problem naming it when it is not a number."""
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        problems.append(Problem(field, f"{value!r} is not a whole number; type digits only"))
        return None


def _templates_page(
    request: Request, session: Any, status_code: int = 200, **context: Any
) -> Response:
    context.setdefault("notice", "")
    context.setdefault("error", "")
    context.setdefault("form", {})
    return page(
        request,
        "templates.html",
        status_code=status_code,
        session=session,
        nav="templates",
        items=templates.list_templates(session.organisation_id),
        stages=list(LeadStage),
        types=list(LeadType),
        registration_statuses=list(RegistrationStatus),
        modes=list(ExecutionMode),
        **context,
    )


@router.get("/templates", include_in_schema=False)
def templates_page(
    request: Request,
    session: SessionDep,
    notice: Annotated[str, Query(max_length=500)] = "",
    error: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    return _templates_page(request, session, notice=notice, error=error)


@router.post("/templates", include_in_schema=False)
def create_template(
    request: Request,
    session: CheckedDep,
    name: Text = "",
    city: Text = "",
    lead_stage: Text = "",
    lead_type: Text = "",
    registration_status: Text = "",
    min_icp_score: Text = "",
    limit: Text = "10",
    execution_mode: Text = ExecutionMode.SEQUENTIAL.value,
    concurrency: Text = "",
) -> Response:
    """Save a template from the filter form; every problem is shown and nothing is saved."""
    form = dict(
        name=name, city=city, lead_stage=lead_stage, lead_type=lead_type, limit=limit,
        registration_status=registration_status, min_icp_score=min_icp_score,
        execution_mode=execution_mode, concurrency=concurrency,
    )  # fmt: skip
    problems: list[Problem] = []
    numbers = {
        "min_icp_score": optional_int(min_icp_score, "min_icp_score", problems),
        "limit": optional_int(limit, "limit", problems),
        "concurrency": optional_int(concurrency, "concurrency", problems),
    }
    try:
        if problems:
            raise InvalidInputError("template not saved", problems)
        saved = templates.create_template(
            session.organisation_id,
            name=name.strip(),
            city=city.strip() or None,
            lead_stage=lead_stage or None,
            lead_type=lead_type or None,
            registration_status=registration_status or None,
            min_icp_score=numbers["min_icp_score"],
            limit=numbers["limit"] or 10,
            execution_mode=execution_mode,
            concurrency=numbers["concurrency"],
        )
    except RegbatchError as exc:
        return _templates_page(request, session, 400, error=str(exc), form=form)
    return RedirectResponse(
        "/console/templates?" + urlencode({"notice": f"Template {saved.name!r} saved."}),
        status_code=303,
    )


@router.post("/templates/{template_id}/run", include_in_schema=False)
async def run_template(
    template_id: uuid.UUID, session: CheckedDep, start: Annotated[str, Form()] = ""
) -> Response:
    """Make a batch of the restaurants the template picks now; start it when asked."""
    batch_id = await run_in_threadpool(
        lambda: templates.create_batch_from_template(
            session.organisation_id, template_id, created_by=session.actor
        )
    )
    if batch_id is None:
        message = "No restaurant matches the template now: no batch was made."
        return RedirectResponse(
            "/console/templates?" + urlencode({"error": message}), status_code=303
        )
    if start:
        outcome, _ = await perform(batch_id, "start", session)
        key = "notice" if outcome.ok else "error"
        return RedirectResponse(
            f"/console/batches/{batch_id}?" + urlencode({key: outcome.message}), status_code=303
        )
    notice = "Batch made from the template: check it, then start it."
    return RedirectResponse(
        f"/console/batches/{batch_id}?" + urlencode({"notice": notice}), status_code=303
    )


@router.post("/templates/{template_id}/delete", include_in_schema=False)
def delete_template(template_id: uuid.UUID, session: CheckedDep) -> Response:
    gone = templates.delete_template(session.organisation_id, template_id)
    notice = f"Template {gone.name!r} deleted; the batches made from it stay."
    return RedirectResponse("/console/templates?" + urlencode({"notice": notice}), status_code=303)


def _webhooks_page(
    request: Request, session: Any, status_code: int = 200, **context: Any
) -> Response:
    context.setdefault("notice", "")
    context.setdefault("error", "")
    context.setdefault("created", None)
    context.setdefault("url", "")
    return page(
        request,
        "webhooks.html",
        status_code=status_code,
        session=session,
        nav="webhooks",
        items=webhooks.list_subscriptions(session.organisation_id),
        attempts=webhook_attempts(session.organisation_id),
        events=list(WebhookEvent),
        **context,
    )


@router.get("/webhooks", include_in_schema=False)
def webhooks_page(
    request: Request,
    session: SessionDep,
    notice: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    return _webhooks_page(request, session, notice=notice)


@router.post("/webhooks", include_in_schema=False)
async def add_webhook(request: Request, session: CheckedDep) -> Response:
    """Subscribe a URL; its signing secret is shown on this answer only."""
    form = await request.form()
    url = str(form.get("url", ""))[:2000]
    events = [str(e) for e in form.getlist("events")][:20]
    try:
        created = await run_in_threadpool(
            lambda: webhooks.create_subscription(session.organisation_id, url=url, events=events)
        )
    except RegbatchError as exc:
        return _webhooks_page(request, session, 400, error=str(exc), url=url)
    return _webhooks_page(request, session, created=created)


@router.post("/webhooks/{subscription_id}/delete", include_in_schema=False)
def delete_webhook(subscription_id: uuid.UUID, session: CheckedDep) -> Response:
    webhooks.delete_subscription(session.organisation_id, subscription_id)
    return RedirectResponse(
        "/console/webhooks?" + urlencode({"notice": "Webhook removed."}), status_code=303
    )
