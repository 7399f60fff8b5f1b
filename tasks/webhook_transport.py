"""The HTTP transport of webhook deliveries: it resolves the receiver's name, checks every address
it resolves to (regbatch.webhook_targets), then connects to the checked address itself.

The request keeps its Host header and, over TLS, the receiver's name for SNI and certificate
verification; only the address it connects to is pinned. So a name that answers DNS with a public
address for the check and 127.0.0.1 for the connection (DNS rebinding) reaches nothing it should
not: there is no second lookup. Connections are not kept alive, so a TLS connection made for one
name is never reused for another name on the same address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from regbatch.webhook_targets import IPAddress, TargetRefusedError, checked_addresses, resolve
from regbatch.webhooks import redact_url

Resolver = Callable[[str, int], list[IPAddress]]
DEFAULT_PORTS = {"http": 80, "https": 443}


class GuardedTransport(httpx.AsyncBaseTransport):
    """Sends each request to an address its host resolved to and that passed the check;
    raises TargetRefusedError for a refused address, httpx.ConnectError when it does not
    resolve."""

    def __init__(
        self,
        *,
        allow_private: bool,
        inner: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve, check, and send the request to the first checked address."""
        url = request.url
        address = await self._checked(request)
        pinned_host = f"[{address}]" if address.version == 6 else str(address)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host  # certificates are checked for the name
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=pinned_host),
            headers=request.headers,  # Host: still the receiver's name
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def _checked(self, request: httpx.Request) -> IPAddress:
        url = request.url
        port = url.port or DEFAULT_PORTS.get(url.scheme, 80)
        shown = redact_url(str(url))
        if url.userinfo:  # a subscription from before credentials were refused
            raise TargetRefusedError(
                f"webhook URL {shown} has credentials (user:password@) in it; delete the "
                "webhook and subscribe the URL without them"
            )
        timeout = (request.extensions.get("timeout") or {}).get("connect")

        def lookup() -> list[IPAddress]:
            return checked_addresses(
                shown, url.host, port, self._allow_private, resolver=self._resolver
            )

        try:
            addresses = await asyncio.wait_for(asyncio.to_thread(lookup), timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"resolving {url.host} timed out") from None
        except (OSError, UnicodeError) as exc:
            raise httpx.ConnectError(f"{url.host} does not resolve ({exc})") from None
        return addresses[0]

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
