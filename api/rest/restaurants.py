"""`/restaurants`: the caller's restaurants, filtered and paged, and saved by upsert."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import BaseModel

from regbatch.api.rest.auth import CallerDep
from regbatch.api.rest.schemas import error_responses
from regbatch.restaurant import (
    ImportAction,
    LeadStage,
    LeadType,
    RegistrationStatus,
    RestaurantIn,
    RestaurantType,
)
from regbatch.selection import SEARCH_MAX, RestaurantSelection
from regbatch.services import restaurants, shortlist
from regbatch.views import RestaurantRow, RestaurantView, UpsertOutcome

router = APIRouter(prefix="/restaurants", tags=["restaurants"])


PAGE_MAX = 500


class RestaurantList(BaseModel):
    """One page of restaurants (best ICP score first) and how many match in all."""

    items: list[RestaurantRow]
    total_count: int
    limit: int
    offset: int


class SavedRestaurants(BaseModel):
    """What saving the request's restaurants did, row by row, and the counts."""

    items: list[UpsertOutcome]
    created: int
    updated: int
    unchanged: int


@router.get(
    "",
    response_model=RestaurantList,
    responses=error_responses(),
    summary="List restaurants: filter, search, page (best ICP score first)",
    operation_id="list_restaurants",
)
def list_restaurants(
    caller: CallerDep,
    city: Annotated[str | None, Query(max_length=120, description="Any case.")] = None,
    lead_stage: LeadStage | None = None,
    lead_type: LeadType | None = None,
    restaurant_type: RestaurantType | None = None,
    registration_status: RegistrationStatus | None = None,
    min_icp_score: Annotated[int | None, Query(ge=0, le=10)] = None,
    q: Annotated[
        str | None, Query(max_length=SEARCH_MAX, description="Part of the name, email or city.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RestaurantList:
    """One page of the caller's restaurants matching every given filter, and how many match."""
    selection = RestaurantSelection(
        city=city,
        lead_stage=lead_stage,
        lead_type=lead_type,
        restaurant_type=restaurant_type,
        registration_status=registration_status,
        min_icp_score=min_icp_score,
        search=q,
    )
    page = shortlist.restaurant_page(caller.organisation_id, selection, offset=offset, limit=limit)
    return RestaurantList(
        items=page.items, total_count=page.total, limit=page.limit, offset=page.offset
    )


@router.post(
    "",
    response_model=SavedRestaurants,
    responses={
        201: {"model": SavedRestaurants, "description": "At least one restaurant was created."},
        **error_responses(),
    },
    summary="Save one restaurant or many: created, updated or unchanged, row by row",
    operation_id="save_restaurants",
)
def save_restaurants(
    body: Annotated[
        RestaurantIn | list[RestaurantIn],
        Body(
            openapi_examples={
                "one": {
                    "summary": "One restaurant, keyed by your own id",
                    "value": {"name": "Pho Real", "external_id": "crm-118", "city": "Auckland"},
                }
            }
        ),
    ],
    caller: CallerDep,
    response: Response,
) -> SavedRestaurants:
    """Each row matches the restaurant with the same `external_id` (your own id for it), else
    the same email (any case): it is created, or its given fields updated, or left unchanged.
    One bad row saves nothing, and every bad row is listed (`subject`: 'row N').

    200 when nothing was created; 201 when something was, with a Location when one row was
    sent."""
    items = body if isinstance(body, list) else [body]
    outcomes = restaurants.save_restaurants(caller.organisation_id, [_row(i) for i in items])
    counts = {action: sum(o.action == action for o in outcomes) for action in ImportAction}
    if counts[ImportAction.CREATED]:
        response.status_code = status.HTTP_201_CREATED
        if len(outcomes) == 1:
            response.headers["Location"] = f"/restaurants/{outcomes[0].id}"
    return SavedRestaurants(
        items=outcomes,
        created=counts[ImportAction.CREATED],
        updated=counts[ImportAction.UPDATED],
        unchanged=counts[ImportAction.UNCHANGED],
    )


@router.get(
    "/{restaurant_id}",
    response_model=RestaurantView,
    responses=error_responses(404),
    summary="A restaurant",
    operation_id="get_restaurant",
)
def get_restaurant(restaurant_id: uuid.UUID, caller: CallerDep) -> RestaurantView:
    """One of the caller's restaurants (never its account password)."""
    return restaurants.get_restaurant(caller.organisation_id, restaurant_id)


def _row(item: RestaurantIn) -> dict[str, Any]:
    """The fields the caller gave (the others keep their values on an update)."""
    row = item.model_dump(exclude_unset=True)
    if item.account_password is not None:
        row["account_password"] = item.account_password.get_secret_value()
    return row
