"""One platform client (one connection pool) per event loop in this process."""

from __future__ import annotations

import asyncio
import weakref

from regbatch.platform import PlatformClient

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PlatformClient] = (
    weakref.WeakKeyDictionary()
)


def platform_client() -> PlatformClient:
    """The running loop's client for REGBATCH_PLATFORM_URL, created on first use."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None:
        client = _CLIENTS[loop] = PlatformClient.from_settings()
    return client


async def close_platform_client() -> None:
    """Close the running loop's client (flows call this when they end)."""
    client = _CLIENTS.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
