"""One platform client (one connection pool) per event loop in this process.

Flows open it for their run with `platform_session`, which closes it when they end.

`use_platform_client` puts a given client in place for the running loop (the unit tests' one,
talking to the sandbox in-process).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from regbatch.platform import PlatformClient

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PlatformClient] = (
    weakref.WeakKeyDictionary()
)


def platform_client() -> PlatformClient:
    """The running loop's client for REGBATCH_PLATFORM_URL, created on first use (outside a
    `platform_session`, nothing closes it)."""
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None:
        client = _CLIENTS[loop] = PlatformClient.from_settings()
    return client


@asynccontextmanager
async def platform_session() -> AsyncIterator[None]:
    """The running loop's client is open inside the block and closed at its end, unless an
    enclosing block (or `use_platform_client`) opened it: a batch's flow and a restaurant's
    flow both run in one, so a restaurant run by a worker process closes its client too, and
    one run in the batch's process leaves the batch's client open for the others."""
    loop = asyncio.get_running_loop()
    if loop in _CLIENTS:
        yield
        return
    client = _CLIENTS[loop] = PlatformClient.from_settings()
    try:
        yield
    finally:
        if _CLIENTS.get(loop) is client:
            del _CLIENTS[loop]
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
