"""regbatch-trucks: an example regbatch plugin.

* `menu_import` for food trucks: the built-in import (through `ctx.call_default()`), plus the
  truck's service days, which the sales team's route planner reads from the step's result.
* `crm_sync`, an extra step after restaurant registration: POSTs the registered restaurant to
  the sales CRM at `$REGBATCH_TRUCKS_CRM_URL` with the step's idempotency key, and stores the
  CRM's id. A 5xx, 408 or 429 (or no answer) is retried under the step's policy; any other 4xx
  fails the step.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from regbatch.errors import PermanentPlatformError, TransientPlatformError
from regbatch.handlers import StepContext, extra_step, step_handler

CRM_URL_VARIABLE = "REGBATCH_TRUCKS_CRM_URL"


@step_handler("menu_import", restaurant_type="food_truck")
async def import_truck_menu(ctx: StepContext) -> dict[str, Any]:
    """Imports a food truck's menu and records the days it trades."""
    result = await ctx.call_default()
    days = sorted((ctx.restaurant.opening_hours or {}).keys())
    ctx.logger.info("%s trades on %s", ctx.restaurant.name, ", ".join(days) or "no set days")
    return {**result, "service_days": days, "menu_handler": "regbatch-trucks"}


@extra_step(
    "crm_sync",
    after=("restaurant_registration",),
    blocking=False,
    timeout_s=60,
    retries=3,
    retry_delays_s=(1.0, 2.0, 4.0),
)
async def crm_sync(ctx: StepContext) -> dict[str, Any]:
    """Pushes the registered restaurant to the sales CRM."""
    url = os.environ.get(CRM_URL_VARIABLE)
    if not url:
        raise PermanentPlatformError(
            f"{CRM_URL_VARIABLE} is not set; set it to the CRM's sync endpoint where the batch runs"
        )
    registered = ctx.outputs.get("restaurant_registration") or {}
    body = {
        "restaurant_id": ctx.restaurant.id,
        "name": ctx.restaurant.name,
        "restaurant_type": ctx.restaurant.restaurant_type,
        "city": ctx.restaurant.city,
        "platform_restaurant_id": registered.get("platform_restaurant_id"),
        "subdomain": registered.get("subdomain"),
    }
    headers = {"Idempotency-Key": ctx.idempotency_key}
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
            response = await client.post(url, json=body, headers=headers)
    except httpx.TransportError as exc:
        raise TransientPlatformError(
            f"the CRM at {url} did not answer ({type(exc).__name__}); retried"
        ) from None
    return _crm_answer(url, response)


def _crm_answer(url: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise TransientPlatformError(f"the CRM at {url} answered {status}; retried", status)
    if status >= 400:
        raise PermanentPlatformError(
            f"the CRM at {url} refused the restaurant: {status} {response.text[:200]}; "
            "fix the restaurant's record, then retry the failed restaurants",
            status,
        )
    crm_id = response.json().get("crm_id")
    if not crm_id:
        raise PermanentPlatformError(f"the CRM at {url} answered {status} without a crm_id", status)
    return {"crm_id": str(crm_id)}
