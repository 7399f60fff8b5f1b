"""Property-based run of the whole REST API from its OpenAPI schema (schemathesis): whatever a
client sends, authenticated with a real key, the API never answers a server error and its answers
match the schema it documents. Two organisations: the same requests sent with the other
organisation's key, or with none, answer 401/404 (or refuse the input) and carry none of the
first organisation's data.

The start routes stay in: the batch deployment is registered on the session's Prefect server
(not served), so a start succeeds (the batch goes `pending`) instead of answering 503. Path ids
are often swapped for the caller's real batches, templates and webhooks, and body restaurant ids
for its real restaurants, so the fuzzing reaches past "not found" into the actions themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from regbatch.api.rest import create_app
from regbatch.db.engine import session_scope
from regbatch.services.templates import create_template
from regbatch.services.webhooks import create_subscription
from tests.factories import make_org, make_restaurants
from tests.integration.rest_support import (
    batch_deployment,  # noqa: F401 - a fixture
    bearer,
    finish_with_failure,
    new_draft,
)
from tests.settings_env import settings_env

WEBHOOK_SETTINGS = {
    "REGBATCH_WEBHOOK_ATTEMPTS": "1",
    "REGBATCH_WEBHOOK_BASE_DELAY_SECONDS": "0",
}
EXAMPLES = 20  # per operation and phase: the whole run stays well under a minute
# Not positive_data_acceptance: a request the schema allows may still break a rule only the
# data can tell (a restaurant of another organisation, a webhook URL that resolves to a private
# address, a used Idempotency-Key), and that is a 422 naming it, by design.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,  # what the schema forbids is refused (strict numbers, dates, names)
    missing_required_header,
    unsupported_method,  # a method the path lacks is a 405 naming the path's methods in Allow
]


@dataclass
class World:
    """The fuzzing organisation's key and objects, and another organisation's key."""

    headers: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    other_headers: dict[str, str] = field(default_factory=dict)

    def leaked(self, response_text: str, sent: str) -> list[str]:
        """The fuzzing organisation's ids in an answer that the request did not send itself."""
        return [
            value
            for values in self.ids.values()
            for value in values
            if value in response_text and value not in sent
        ]

    def pick(self, kind: str, generated: Any) -> Any:
        """A real id in place of about half the generated ones (deterministic in the value).

        Only a well-formed generated id is swapped: a malformed one is a negative case, which
        must stay malformed for the API to reject it.
        """
        known = self.ids.get(kind) or []
        text = str(generated)
        if not known or not text or ord(text[-1]) % 2 or not _is_id(kind, text):
            return generated
        return known[ord(text[0]) % len(known)]


def _is_id(kind: str, text: str) -> bool:
    """Whether `text` is a well-formed value of the kind ('ref': a name of at most 120)."""
    if kind == "ref":
        return len(text) <= 120
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


@pytest.fixture(scope="module")
def quick_webhooks() -> Iterator[None]:
    """One delivery attempt, no backoff: the fuzzer subscribes URLs that never answer."""
    with settings_env(WEBHOOK_SETTINGS):
        yield


@pytest.fixture(scope="module")
def world(pg_url: str, batch_deployment: str, quick_webhooks: None) -> World:  # noqa: F811
    with session_scope() as session:
        org_id = make_org(session)
        other_id = make_org(session)
        restaurants = [str(r) for r in make_restaurants(session, org_id, 12)]
        make_restaurants(session, other_id, 2)
    new_draft(other_id, 1)
    batches = [str(new_draft(org_id, 1)) for _ in range(3)]
    template = create_template(org_id, name=f"fuzz-{uuid.uuid4().hex[:8]}", limit=2)
    finished = new_draft(org_id, 2)
    _, failed_job = finish_with_failure(finished)
    batches.append(str(finished))
    webhook = create_subscription(org_id, url="http://127.0.0.1:9/fuzz")
    _WORLD[:] = [
        World(
            headers=bearer(org_id, "fuzz"),
            ids={
                "batch_id": batches,
                "ref": [str(template.id), template.name],
                "webhook_id": [str(webhook.id)],
                "restaurant": restaurants,
                "restaurant_id": restaurants,
                "job_id": [str(failed_job)],
            },
            other_headers=bearer(other_id, "fuzz other"),
        )
    ]
    return _WORLD[0]


# Loaded once at import (the schema needs no database); pytest-9-compatible, unlike the lazy
# `schemathesis.pytest.from_fixture` of schemathesis 4.32, which sets a private pytest attribute.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
_WORLD: list[World] = []  # set by the `world` fixture before any example runs


@schema.hook
def map_path_parameters(context: Any, path_parameters: Any) -> Any:
    if not _WORLD or not isinstance(path_parameters, dict):
        return path_parameters
    return {k: _WORLD[0].pick(k, v) for k, v in path_parameters.items()}


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    if not _WORLD or not isinstance(body, dict):
        return body
    if isinstance(body.get("restaurant_ids"), list):
        body["restaurant_ids"] = [_WORLD[0].pick("restaurant", r) for r in body["restaurant_ids"]]
    if "restaurant_id" in body:
        body["restaurant_id"] = _WORLD[0].pick("restaurant", body["restaurant_id"])
    return body


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_request_makes_a_server_error(case: Any, world: World) -> None:
    response = case.call(headers=dict(world.headers))
    case.validate_response(
        response,
        checks=_checks(case, world),
        headers=dict(world.headers),
    )
    assert response.status_code < 500, response.text
    assert world.headers["Authorization"].split()[1] not in response.text


def _checks(case: Any, world: World) -> list[Any]:
    """CHECKS, less negative_data_rejection for a negative case whose invalid part is a header
    this test replaces with the real key: the request actually sent no longer has it."""
    data = getattr(getattr(getattr(case, "meta", None), "phase", None), "data", None)
    mutations = getattr(data, "mutations", None) or []
    named = {getattr(data, "parameter", None)} | {getattr(m, "parameter", None) for m in mutations}
    replaced = {name.lower() for name in world.headers}
    if any(isinstance(name, str) and name.lower() in replaced for name in named):
        return [check for check in CHECKS if check is not negative_data_rejection]
    return CHECKS


def _sent(case: Any) -> str:
    return " ".join(str(part) for part in (case.path_parameters, case.query, case.body))


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES // 2,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_another_organisations_key_or_none_reads_nothing(case: Any, world: World) -> None:
    """With the other organisation's key, an object of the fuzzing organisation is not found
    (or the input is refused first); with no key, 401 (or 400/405 for what no route takes).
    Neither answer carries the fuzzing organisation's ids."""
    sent = _sent(case)
    owned_in_path = any(
        str(value) in world.ids.get(name, [])
        for name, value in (case.path_parameters or {}).items()
    )
    for headers in (world.other_headers, {}):
        response = case.call(headers=dict(headers))
        assert response.status_code < 500, response.text
        # a negative case of the security scheme sends no key, or its own, whatever is passed
        sent_key = {k.lower(): v for k, v in response.request.headers.items()}.get("authorization")
        keyed = bool(headers) and sent_key == headers["Authorization"]
        if not keyed:
            assert response.status_code in {400, 401, 405}, (response.status_code, response.text)
        elif owned_in_path:
            assert response.status_code in {400, 404, 405, 422}, (
                response.status_code,
                response.text,
            )
        assert not world.leaked(response.text, sent), (response.status_code, response.text)
