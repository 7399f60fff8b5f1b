"""Account creation is rate-limited by the platform globally: one at a time, a minute apart.

A Prefect global concurrency limit (`regbatch-account-creation`, a rate limit whose single slot
decays over REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS) enforces it across batches, flows and machines.
It is created on first use; a slot of a crashed process simply decays.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from regbatch.settings import get_settings

LIMIT_NAME = "regbatch-account-creation"
_ensured: dict[str, float] = {}


async def ensure_limit(name: str, spacing_s: float) -> None:
    """Create or update the rate limit so one slot frees up every `spacing_s` seconds."""
    if _ensured.get(name) == spacing_s:
        return
    decay = 1.0 / spacing_s
    async with get_client() as client:
        try:
            current = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # another process may create it at the same moment
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1, slot_decay_per_second=decay)
                )
        else:
            if current.limit != 1 or current.slot_decay_per_second != decay:
                await client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=1, slot_decay_per_second=decay)
                )
    _ensured[name] = spacing_s


@asynccontextmanager
async def account_creation_slot() -> AsyncIterator[None]:
    """Wait for the global account-creation slot (no wait when the limit is off)."""
    spacing = get_settings().account_rate_limit_seconds
    if spacing > 0:
        await ensure_limit(LIMIT_NAME, spacing)
        await rate_limit(LIMIT_NAME, occupy=1, strict=True)
    yield
