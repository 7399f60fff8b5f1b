"""The platform client's production wire (aiohttp) against a real HTTP server on a local port.

The other platform-client tests go through httpx transports (the test seam); these check what
only real sockets show: the request as sent, keep-alive and its idle expiry, a connection the
server drops, a server that never answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from regbatch.errors import RateLimitedError, TransientPlatformError
from regbatch.platform import PlatformClient
from regbatch.platform.wire import KEEPALIVE_S
from regbatch.runner.platform import platform_client, platform_session
from regbatch.steps import StepKey
from tests.settings_env import settings_env

pytestmark = pytest.mark.anyio
KEY = "service-key-for-tests"
ACCOUNT = {"success": True, "account_id": "a1", "user_id": "u1", "email": "owner@example.com"}


@dataclass
class Platform:
    """A one-route HTTP/1.1 server: answers with `answer` (status, headers, body), or drops the
    connection ("drop"), or never answers ("hang"); records what it received."""

    answer: tuple[int, dict[str, str], dict[str, Any]] | str = (200, {}, ACCOUNT)
    connections: int = 0
    closed: int = 0  # connections the client closed
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                line, *header_lines = head.strip().split("\r\n")
                headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line, headers, body))
                if self.answer == "drop":
                    break
                if self.answer == "hang":
                    await asyncio.sleep(30)
                    break
                assert not isinstance(self.answer, str)
                status, extra, data = self.answer
                payload = json.dumps(data).encode()
                lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}"]
                lines += [
                    "Content-Type: application/json",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed += 1
        finally:
            writer.close()


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    platform = Platform()
    server = await asyncio.start_server(platform.handle, "127.0.0.1", 0)
    platform.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api"
    async with server:
        yield platform
        server.close()


async def _register(client: PlatformClient, timeout_s: float = 5.0) -> dict[str, Any]:
    return await client.run_step(
        StepKey.ACCOUNT_REGISTRATION,
        {"email": "owner@example.com", "password": "s3cret-pass", "name": "Cafe"},
        organisation_id="org-1",
        idempotency_key="job-1:account_registration",
        timeout_s=timeout_s,
    )


async def test_a_step_request_is_sent_as_json_with_its_headers(platform: Platform) -> None:
    async with PlatformClient(platform.url, KEY) as client:
        result = await _register(client)
    assert result["account_id"] == "a1"
    line, headers, body = platform.requests[0]
    assert line.startswith("POST /api/") and line.endswith(" HTTP/1.1")
    assert headers["x-service-key"] == KEY
    assert headers["x-organisation-id"] == "org-1"
    assert headers["idempotency-key"] == "job-1:account_registration"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["email"] == "owner@example.com"


async def test_connections_are_kept_alive_and_dropped_when_idle(platform: Platform) -> None:
    async with PlatformClient(platform.url, KEY) as client:
        for _ in range(10):
            await _register(client)
        assert platform.connections == 1
        await asyncio.sleep(KEEPALIVE_S + 0.5)
        await _register(client)
    assert platform.connections == 2


async def test_a_429_carries_the_platforms_retry_after(platform: Platform) -> None:
    error = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}
    platform.answer = (429, {"Retry-After": "7"}, error)
    async with PlatformClient(platform.url, KEY) as client:
        with pytest.raises(RateLimitedError) as caught:
            await _register(client)
    assert caught.value.retry_after == 7.0


async def test_a_dropped_connection_is_a_transient_connection_error(platform: Platform) -> None:
    platform.answer = "drop"
    async with PlatformClient(platform.url, KEY) as client:
        with pytest.raises(TransientPlatformError) as caught:
            await _register(client)
    assert caught.value.code == "CONNECTION_ERROR"
    assert "ServerDisconnected" in str(caught.value)
    assert "s3cret-pass" not in str(caught.value) and KEY not in str(caught.value)


async def test_a_platform_that_never_answers_times_out_at_the_steps_timeout(
    platform: Platform,
) -> None:
    platform.answer = "hang"
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with PlatformClient(platform.url, KEY) as client:
        with pytest.raises(TransientPlatformError) as caught:
            await _register(client, timeout_s=0.5)
    assert caught.value.code == "TIMEOUT"
    assert loop.time() - started < 2.0


async def test_a_flows_platform_session_closes_only_the_client_it_opened(
    platform: Platform,
) -> None:
    with settings_env({"REGBATCH_PLATFORM_URL": platform.url}):
        async with platform_session():  # the batch's flow
            batch_client = platform_client()
            async with platform_session():  # a restaurant's flow in the batch's process
                assert platform_client() is batch_client
                await _register(batch_client)
            await asyncio.sleep(0.1)
            assert platform.closed == 0  # still open for the batch's other restaurants
            await _register(batch_client)
        await asyncio.sleep(0.1)
        assert platform.closed == 1  # closed with the batch's flow
        assert platform.connections == 1


async def test_two_restaurants_sessions_on_one_loop_close_the_client_when_both_ended(
    platform: Platform,
) -> None:
    """Without a batch's session around them: the first to end leaves the client open."""
    first_ended = asyncio.Event()

    async def restaurant(first: bool) -> None:
        async with platform_session():
            await _register(platform_client())
            if not first:
                await first_ended.wait()
                await _register(platform_client())  # the client is still open
        if first:
            first_ended.set()

    with settings_env({"REGBATCH_PLATFORM_URL": platform.url}):
        await asyncio.gather(restaurant(True), restaurant(False))
        await asyncio.sleep(0.1)
    assert len(platform.requests) == 3
    assert platform.closed == platform.connections  # all closed once both had ended


async def test_a_closed_client_refuses_to_send_instead_of_reopening(platform: Platform) -> None:
    client = PlatformClient(platform.url, KEY)
    await _register(client)
    await client.aclose()
    with pytest.raises(TransientPlatformError) as caught:
        await _register(client)
    assert caught.value.code == "CONNECTION_ERROR"
    assert "closed" in str(caught.value)
    assert len(platform.requests) == 1
