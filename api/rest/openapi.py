"""The OpenAPI document as client generators need it: operationIds from the route functions'
names (stable: renaming a function is an API change), and an example answer on every
operation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

_BATCH = "5b0c7a52-3f6e-4c1a-9a55-0d2f3b8e6a11"
_JOB = "9e1d2c3b-4a5f-4e6d-8c7b-1a2b3c4d5e6f"
_RESTAURANT = "2f4e6a8c-1b3d-4f5a-9c7e-0d1f2a3b4c5d"
_WHEN = "2026-11-29T09:00:00Z"
_SUMMARY: dict[str, Any] = {
    "id": _BATCH,
    "name": "Auckland Q4",
    "status": "in_progress",
    "execution_mode": "parallel",
    "concurrency": 5,
    "total": 120,
    "completed": 80,
    "failed": 3,
    "cancelled": 0,
    "created_at": _WHEN,
    "started_at": _WHEN,
    "completed_at": None,
    "retry_of_batch_id": None,
    "total_steps": 12,
    "current_step": 9,
}
_STEP: dict[str, Any] = {
    "step_number": 7,
    "step_key": "services_configuration",
    "status": "failed",
    "attempts": 4,
    "started_at": _WHEN,
    "completed_at": _WHEN,
    "duration_ms": 2150,
    "result_data": None,
    "error_message": "services refused: no pickup hours",
    "error_details": None,
    "skip_reason": None,
    "blocked_by_step": None,
    "carried_over": False,
    "handler": None,
}
_JOB_VIEW: dict[str, Any] = {
    "id": _JOB,
    "restaurant_id": _RESTAURANT,
    "restaurant_name": "Pho Real",
    "position": 0,
    "status": "failed",
    "current_step": 7,
    "error_message": None,
    "error_details": None,
    "retry_of_job_id": None,
    "started_at": _WHEN,
    "completed_at": _WHEN,
    "steps": [_STEP],
}
_BATCH_VIEW: dict[str, Any] = {
    **_SUMMARY,
    "organisation_id": "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    "settings": {"payment": {"stripe_connect": False}},
    "created_by": "api:ci (rk_ab12)",
    "breaker_threshold": 0.5,
    "breaker_min_finished": 3,
    "requested_action": None,
    "pause_reason": None,
    "error_message": None,
    "paused_at": None,
    "cancelled_at": None,
    "updated_at": _WHEN,
    "flow_run_id": None,
}
_CREATED = {"batch_id": _BATCH, "jobs_count": 3, "status": "draft"}
_STARTED = {"batch_id": _BATCH, "status": "pending", "started_at": _WHEN}
_RESTAURANT_VIEW: dict[str, Any] = {
    "id": _RESTAURANT,
    "external_id": "crm-118",
    "name": "Pho Real",
    "contact_name": "Linh Tran",
    "email": "owner@phoreal.example",
    "phone": "+64 9 555 0101",
    "address": "12 Queen St",
    "city": "Auckland",
    "country": "NZ",
    "cuisine": "Vietnamese",
    "restaurant_type": "restaurant",
    "lead_type": "inbound",
    "lead_stage": "hot",
    "icp_score": 8,
    "registration_status": "unregistered",
    "subdomain": None,
}
_TEMPLATE: dict[str, Any] = {
    "id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
    "name": "Auckland hot",
    "city": "Auckland",
    "lead_stage": "hot",
    "lead_type": None,
    "min_icp_score": None,
    "registration_status": None,
    "limit": 5,
    "execution_mode": "sequential",
    "concurrency": 1,
    "settings": {},
    "breaker_threshold": 0.5,
    "breaker_min_finished": 3,
    "created_at": _WHEN,
    "updated_at": _WHEN,
}
_WEBHOOK: dict[str, Any] = {
    "id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    "url": "https://ops.example.com/hooks/regbatch",
    "events": ["batch.completed", "batch.failed"],
    "active": True,
    "created_at": _WHEN,
}
_STEP_COUNTS = {"pending": 30, "in_progress": 5, "completed": 85, "failed": 0}

EXAMPLES: dict[str, Any] = {
    "create_batch": _CREATED,
    "list_batches": {
        "items": [{**_SUMMARY, "jobs": None}],
        "total_count": 1,
        "limit": 50,
        "offset": 0,
        "next_cursor": None,
    },
    "get_batch": {**_BATCH_VIEW, "jobs": [_JOB_VIEW], "jobs_total": 120, "next_cursor": "eyJr"},
    "get_batch_progress": {
        "batch_id": _BATCH,
        "name": "Auckland Q4",
        "status": "in_progress",
        "execution_mode": "parallel",
        "concurrency": 5,
        "requested_action": None,
        "pause_reason": None,
        "total": 120,
        "finished": 83,
        "percent": 69.2,
        "jobs": {"pending": 32, "in_progress": 5, "completed": 80, "failed": 3},
        "steps": [
            {
                "step_number": 1,
                "step_key": "account_registration",
                "name": "Account registration",
                "counts": _STEP_COUNTS,
            }
        ],
        "started_at": _WHEN,
        "completed_at": None,
        "elapsed_seconds": 5400.0,
        "eta_seconds": 2400.0,
        "eta_method": "restaurant_average",
        "eta_samples": 80,
    },
    "export_batch": {"batch": _BATCH_VIEW, "rows": []},
    "start_batch": {**_STARTED, "first_job_id": _JOB, "flow_run_id": _BATCH, "deployment": "d"},
    "pause_batch": {
        "batch_id": _BATCH,
        "status": "in_progress",
        "requested_action": "pause",
        "paused_at": None,
    },
    "resume_batch": {**_STARTED, "requested_action": None, "flow_run_id": _BATCH},
    "cancel_batch": {
        "batch_id": _BATCH,
        "status": "cancelled",
        "requested_action": None,
        "cancelled_at": _WHEN,
    },
    "retry_failed_batch": {"new_batch_id": _BATCH, "status": "draft", "already_existed": False},
    "register_restaurant": {**_CREATED, "jobs_count": 1},
    "get_job": _JOB_VIEW,
    "retry_job": {"new_batch_id": _BATCH, "status": "pending", "already_existed": False},
    "list_restaurants": {
        "items": [
            {
                k: _RESTAURANT_VIEW[k]
                for k in (
                    "id",
                    "name",
                    "city",
                    "lead_stage",
                    "lead_type",
                    "restaurant_type",
                    "registration_status",
                    "icp_score",
                    "external_id",
                    "email",
                )
            }
        ],
        "total_count": 1,
        "limit": 50,
        "offset": 0,
    },
    "save_restaurants": {
        "items": [{"row": 1, "action": "created", "id": _RESTAURANT, "name": "Pho Real"}],
        "created": 1,
        "updated": 0,
        "unchanged": 0,
    },
    "get_restaurant": _RESTAURANT_VIEW,
    "create_template": _TEMPLATE,
    "list_templates": [_TEMPLATE],
    "get_template": _TEMPLATE,
    "delete_template": _TEMPLATE,
    "preview_template": [
        {
            "id": _RESTAURANT,
            "name": "Pho Real",
            "city": "Auckland",
            "lead_stage": "hot",
            "lead_type": "inbound",
            "icp_score": 8,
            "registration_status": "unregistered",
        }
    ],
    "run_template": {**_CREATED, "jobs_count": 5},
    "create_webhook": {**_WEBHOOK, "secret": "whsec_..."},
    "list_webhooks": [_WEBHOOK],
    "delete_webhook": None,
}


def operation_id(route: APIRoute) -> str:
    """A route's operationId: its function's name (`list_batches`, `get_job`)."""
    return route.name


def install(app: FastAPI) -> None:
    """Serve the document with an example answer on every operation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for item in document["paths"].values():
                for operation in item.values():
                    _add_example(operation)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_example(operation: dict[str, Any]) -> None:
    example = EXAMPLES.get(operation["operationId"])
    success = next(code for code in operation["responses"] if code.startswith("2"))
    for media in operation["responses"][success].get("content", {}).values():
        if example is not None:  # a 204 has no body to show
            media["example"] = example
