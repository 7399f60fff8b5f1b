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
# How many `platform_session` blocks are open on each loop.
_OPEN_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = (
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
    """The running loop's client is open inside the block and closed when the last block open
    on the loop ends, unless `use_platform_client` or a call outside any block opened it. A
    batch's flow and a restaurant's flow both run in one: a restaurant run by a worker process
    closes its client, one run in the batch's process leaves the batch's client open."""
    loop = asyncio.get_running_loop()
    if loop in _CLIENTS and not _OPEN_SESSIONS.get(loop):
        yield  # not opened by a session: left to whoever opened it
        return
    if loop not in _CLIENTS:
        _CLIENTS[loop] = PlatformClient.from_settings()
    _OPEN_SESSIONS[loop] = _OPEN_SESSIONS.get(loop, 0) + 1
    try:
        yield
    finally:
        _OPEN_SESSIONS[loop] -= 1
        if not _OPEN_SESSIONS[loop]:
            del _OPEN_SESSIONS[loop]
            client = _CLIENTS.pop(loop, None)
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
