"""Console pages to choose restaurants and register them: the restaurants a filter matches, the
batch form with each chosen restaurant's pre-flight problems (before anything is created), and
creating the batch (and starting it) through services/batches.py."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from regbatch.api.console.actions import perform
from regbatch.api.console.auth import CheckedDep, SessionDep
from regbatch.api.console.extras import optional_int
from regbatch.api.console.render import page
from regbatch.api.console.session import ConsoleSession
from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD
from regbatch.errors import InvalidInputError, Problem, RegbatchError
from regbatch.restaurant import LeadStage, LeadType, RegistrationStatus, RestaurantType
from regbatch.selection import RestaurantSelection
from regbatch.services import batches, shortlist
from regbatch.settings import get_settings
from regbatch.statuses import ExecutionMode

router = APIRouter(prefix="/console")
PAGE = 100
FILTERS = ("city", "lead_stage", "restaurant_type", "registration_status", "search")
Filter = Annotated[str, Query(max_length=200)]


def _selection(values: dict[str, str]) -> RestaurantSelection:
    def given(name: str) -> str | None:
        return values.get(name, "").strip() or None

    return RestaurantSelection(
        city=given("city"),
        lead_stage=given("lead_stage"),
        restaurant_type=given("restaurant_type"),
        registration_status=given("registration_status"),
        search=given("search"),
        everything=True,
    )


@router.get("/restaurants", include_in_schema=False)
def restaurants_page(
    request: Request,
    session: SessionDep,
    city: Filter = "",
    lead_stage: Filter = "",
    restaurant_type: Filter = "",
    registration_status: Filter = "",
    search: Filter = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    error: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    values = {
        "city": city, "lead_stage": lead_stage, "restaurant_type": restaurant_type,
        "registration_status": registration_status, "search": search,
    }  # fmt: skip
    found = shortlist.restaurant_page(
        session.organisation_id,
        _selection(values),
        offset=(page_number - 1) * PAGE,
        limit=PAGE,
    )
    return page(
        request,
        "restaurants.html",
        session=session,
        nav="restaurants",
        found=found,
        values=values,
        page_number=page_number,
        pages=max(1, -(-found.total // PAGE)),
        link=lambda **changes: "?" + urlencode({**values, **changes}),
        stages=list(LeadStage),
        lead_types=list(LeadType),
        types=list(RestaurantType),
        registration_statuses=list(RegistrationStatus),
        error=error,
    )


@dataclass
class BatchForm:
    """The batch form as typed, and what is wrong with it."""

    restaurant_ids: list[uuid.UUID]
    name: str = ""
    execution_mode: str = ExecutionMode.PARALLEL.value
    concurrency: str = field(default_factory=lambda: str(get_settings().default_concurrency))
    settings_text: str = "{}"
    breaker_threshold: str = str(BREAKER_THRESHOLD)
    breaker_min_finished: str = str(BREAKER_MIN_FINISHED)
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def read(cls, form: FormData) -> BatchForm:
        text = {k: str(form[k])[:20_000] for k in _FORM_FIELDS if k in form}
        problems: list[Problem] = []
        ids = []
        for raw in form.getlist("restaurant_id")[:5000]:
            try:
                ids.append(uuid.UUID(str(raw)))
            except ValueError:
                problems.append(Problem("restaurant_id", f"{raw!r} is not a restaurant id"))
        return cls(restaurant_ids=ids, problems=problems, **text)

    def settings(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.settings_text or "{}")
        except json.JSONDecodeError as exc:
            self.problems.append(
                Problem("settings", f"is not JSON ({exc.msg} at line {exc.lineno}); fix it")
            )
            return None
        if not isinstance(value, dict):
            self.problems.append(Problem("settings", "must be a JSON object, e.g. {}"))
            return None
        return value


_FORM_FIELDS = (
    "name", "execution_mode", "concurrency", "settings_text", "breaker_threshold",
    "breaker_min_finished",
)  # fmt: skip


@router.post("/batch-form", include_in_schema=False)
async def batch_form(request: Request, session: CheckedDep) -> Response:
    """The batch form for the chosen restaurants (or every one the filter matches), with each
    one's pre-flight problems under the default settings."""
    form = await request.form()
    try:
        if form.get("all_matching"):
            values = {k: str(form.get(k, "")) for k in FILTERS}
            ids = await run_in_threadpool(
                shortlist.matching_ids, session.organisation_id, _selection(values)
            )
        else:
            ids = BatchForm.read(form).restaurant_ids
    except RegbatchError as exc:
        return RedirectResponse(
            "/console/restaurants?" + urlencode({"error": str(exc)}), status_code=303
        )
    if not ids:
        message = "No restaurant was chosen: tick some, or 'all matching', then Register."
        return RedirectResponse(
            "/console/restaurants?" + urlencode({"error": message}), status_code=303
        )
    return await _form_page(request, session, BatchForm(restaurant_ids=ids), 200)


async def _form_page(
    request: Request, session: ConsoleSession, form: BatchForm, status_code: int
) -> Response:
    settings = form.settings() if not form.problems else None
    rows = await run_in_threadpool(
        shortlist.preflight, session.organisation_id, form.restaurant_ids, settings
    )
    return page(
        request,
        "batch_form.html",
        status_code=status_code,
        session=session,
        nav="restaurants",
        form=form,
        rows=rows,
        blocked=sum(1 for r in rows if r.problems or r.busy_in_batch),
        modes=list(ExecutionMode),
    )


@router.post("/batch-form/create", include_in_schema=False)
async def create_batch(request: Request, session: CheckedDep) -> Response:
    """Check again, create, or create and start, as the button pressed says."""
    raw = await request.form()
    form = BatchForm.read(raw)
    intent = str(raw.get("intent", "check"))
    settings = form.settings()
    numbers = _numbers(form)
    if intent == "check" or form.problems:
        return await _form_page(request, session, form, 400 if form.problems else 200)
    try:
        batch_id = await run_in_threadpool(lambda: _create(form, settings, numbers, session))
    except InvalidInputError as exc:
        form.problems.extend(exc.problems or [Problem("batch", exc.summary)])
        return await _form_page(request, session, form, 400)
    if intent == "start":
        outcome, _ = await perform(batch_id, "start", session)
        key = "notice" if outcome.ok else "error"
        message = outcome.message
    else:
        key, message = "notice", "Batch created as a draft: start it when ready."
    return RedirectResponse(
        f"/console/batches/{batch_id}?" + urlencode({key: message}), status_code=303
    )


def _numbers(form: BatchForm) -> dict[str, Any]:
    concurrency = optional_int(form.concurrency, "concurrency", form.problems)
    min_finished = optional_int(form.breaker_min_finished, "breaker_min_finished", form.problems)
    try:
        threshold = float(form.breaker_threshold)
    except ValueError:
        form.problems.append(
            Problem("breaker_threshold", f"{form.breaker_threshold!r} is not a number, e.g. 0.5")
        )
        threshold = BREAKER_THRESHOLD
    return {
        "concurrency": concurrency,
        "breaker_threshold": threshold,
        "breaker_min_finished": min_finished or BREAKER_MIN_FINISHED,
    }


def _create(
    form: BatchForm, settings: dict[str, Any] | None, numbers: dict[str, Any], who: ConsoleSession
) -> uuid.UUID:
    if not form.name.strip():
        raise InvalidInputError(
            "batch not created", [Problem("name", "is empty; name the batch, e.g. 'Auckland Q4'")]
        )
    return batches.create_batch(
        who.organisation_id,
        name=form.name.strip()[:200],
        restaurant_ids=form.restaurant_ids,
        settings=settings,
        execution_mode=form.execution_mode,
        created_by=who.actor,
        **numbers,
    )
