"""How the platform client puts a request on the wire: aiohttp in production, httpx in tests.

`PlatformClient` builds each request and reads each answer (regbatch/platform/client.py); a
`Wire` only sends it and hands back the status, the body and the Retry-After header, or raises
`WireError` (the connection failed) or `TimeoutError`.

* `AiohttpWire`, what a batch uses: one aiohttp session per client (per event loop). It costs
  about a fifth of httpx's CPU per request (bench/README.md, "Against Prefect's floor"): a batch
  sends twelve requests per restaurant, from the same process as Prefect's engine.
* `HttpxWire(transport)`: requests go through an httpx transport instead, the seam of the unit
  tests (the sandbox app in-process through `httpx.ASGITransport`, a scripted platform through
  `httpx.MockTransport`).

Connections are kept alive and dropped after 2 s idle, before a server's keep-alive timeout
(5 s for uvicorn) can close one under a request being sent.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import certifi
import httpx

KEEPALIVE_S = 2.0
CONNECT_S = 10.0
# A parallel batch has up to concurrency x 5 step requests in flight.
MAX_CONNECTIONS = 256


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    timeout_s: float

    def encoded(self) -> tuple[dict[str, str], bytes | None]:
        """The headers and the body as sent: the body as compact JSON, said so."""
        if self.body is None:
            return self.headers, None
        data = json.dumps(
            self.body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        return {**self.headers, "Content-Type": "application/json"}, data


@dataclass(frozen=True)
class Answer:
    status: int
    content: bytes
    retry_after: str | None


class WireError(Exception):
    """The request could not be sent or its answer not read (refused, reset, protocol error);
    `kind` names the HTTP library's error (ClientConnectorError, ConnectError, ...)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error) or type(error).__name__)
        self.kind = type(error).__name__


class Wire(Protocol):
    async def send(self, request: Request) -> Answer:
        """Send one request; its answer, WireError, or TimeoutError after its `timeout_s`."""
        ...

    async def aclose(self) -> None: ...


class AiohttpWire:
    """The production wire; its session is created on the first request, in the running loop."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:  # a step still unwinding after its batch's run ended
            raise WireError(RuntimeError("the platform client was closed with its flow run"))
        if self._session is None:
            # As httpx did: proxies from the environment (HTTPS_PROXY, NO_PROXY) and certifi's
            # certificate authorities.
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS,
                    keepalive_timeout=KEEPALIVE_S,
                    ssl=ssl.create_default_context(cafile=certifi.where()),
                ),
                trust_env=True,
            )
        return self._session

    async def send(self, request: Request) -> Answer:
        headers, data = request.encoded()
        timeout = aiohttp.ClientTimeout(
            total=request.timeout_s, sock_connect=min(CONNECT_S, request.timeout_s)
        )
        try:
            async with self._open().request(
                request.method,
                request.url,
                headers=headers,
                data=data,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                return Answer(response.status, content, response.headers.get("Retry-After"))
        except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
            raise
        except aiohttp.ClientError as exc:
            raise WireError(exc) from exc

    async def aclose(self) -> None:
        session, self._session, self._closed = self._session, None, True
        if session is not None:
            await session.close()


class HttpxWire:
    """Requests through an httpx transport (the tests' seam)."""

    def __init__(self, headers: dict[str, str], transport: httpx.AsyncBaseTransport) -> None:
        self._client = httpx.AsyncClient(
            transport=transport, headers=headers, follow_redirects=False
        )

    async def send(self, request: Request) -> Answer:
        headers, data = request.encoded()
        timeout = httpx.Timeout(request.timeout_s, connect=min(CONNECT_S, request.timeout_s))
        try:
            response = await self._client.request(
                request.method, request.url, headers=headers, content=data, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc)) from exc
        except httpx.RequestError as exc:
            raise WireError(exc) from exc
        return Answer(response.status_code, response.content, response.headers.get("Retry-After"))

    async def aclose(self) -> None:
        await self._client.aclose()
