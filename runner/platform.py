"""One platform client (one connection pool) per event loop in this process.

`use_platform_client` puts a given client in place for the running loop (the unit tests' one,
talking to the sandbox in-process).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def use_platform_client(client: PlatformClient) -> Iterator[PlatformClient]:
    """Steps running on this event loop call the platform through `client` inside the block."""
    loop = asyncio.get_running_loop()
    previous = _CLIENTS.get(loop)
    _CLIENTS[loop] = client
    try:
        yield client
    finally:
        if previous is None:
            _CLIENTS.pop(loop, None)
        else:
            _CLIENTS[loop] = previous
