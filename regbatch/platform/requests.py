"""A step's request payload: its row's builder (regbatch.steps) over the job's configuration.

`build_request` raises PermanentPlatformError (code MISSING_INPUT) naming the missing input and
its fix. Every payload carries `restaurantId`; only account_registration's carries the password.
"""

from __future__ import annotations

from typing import Any

from regbatch.config import RegistrationConfig
from regbatch.platform.builders import RequestContext, Results
from regbatch.step_spec import StepKey
from regbatch.steps import step


def build_request(
    key: StepKey,
    config: RegistrationConfig,
    results: Results,
    *,
    restaurant_id: str,
    password: str | None = None,
) -> dict[str, Any]:
    """The JSON payload of step `key` for one restaurant."""
    spec = step(key)
    context = RequestContext(spec.key, config, results, password, restaurant_id)
    return {"restaurantId": restaurant_id, **spec.build(context)}
