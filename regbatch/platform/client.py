"""The registration platform's HTTP client.

`PlatformClient.run_step` sends one step's request and returns its typed result as a JSON-safe
dict, or raises TransientPlatformError / RateLimitedError / PermanentPlatformError (see
`regbatch.platform.answers` for the mapping). The requests go out through a `Wire`
(regbatch/platform/wire.py: aiohttp, or an httpx `transport`, the test seam); what is sent and
how each answer is read is decided here, the same for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from regbatch.errors import PermanentPlatformError, PlatformError, TransientPlatformError
from regbatch.platform.answers import RETRYING, WRONG_API, Call, read_answer, to_result
from regbatch.platform.builders import missing_input
from regbatch.platform.wire import AiohttpWire, HttpxWire, Request, Wire, WireError
from regbatch.settings import IMAGE_POLL_INTERVAL_S, Settings, get_settings
from regbatch.steps import StepKey, step

UPLOAD_PENDING = frozenset({"accepted", "queued", "pending", "processing", "in_progress"})


class PlatformClient:
    """Connections to the registration platform; use as `async with PlatformClient(...)`."""

    def __init__(
        self,
        base_url: str,
        service_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval_s: float = IMAGE_POLL_INTERVAL_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._service_key = service_key
        self._poll_interval_s = poll_interval_s
        headers = {"X-Service-Key": service_key, "Accept": "application/json"}
        self._wire: Wire = (
            AiohttpWire(headers) if transport is None else HttpxWire(headers, transport)
        )

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> PlatformClient:
        """A client for REGBATCH_PLATFORM_URL with REGBATCH_PLATFORM_SERVICE_KEY."""
        settings = settings or get_settings()
        return cls(
            settings.platform_url,
            settings.platform_service_key.get_secret_value(),
            transport=transport,
            poll_interval_s=settings.image_poll_interval_seconds,
        )

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def run_step(
        self,
        key: StepKey,
        payload: dict[str, Any],
        *,
        organisation_id: str,
        idempotency_key: str,
        timeout_s: float,
    ) -> dict[str, Any]:
        """Run one step on the platform; its typed result as a dict, or a PlatformError."""
        key = StepKey(key)
        deadline = asyncio.get_running_loop().time() + timeout_s
        password = payload.get("password")
        secrets = (self._service_key, password if isinstance(password, str) else "")
        path, body = _route(key, payload)
        call = Call(key, f"POST {path}", secrets)
        headers = {"X-Organisation-ID": organisation_id, "Idempotency-Key": idempotency_key}
        data, existed, status = await self._exchange(
            call, timeout_s, deadline, "POST", path, headers, body
        )
        if key is StepKey.IMAGE_UPLOAD and not existed and data.get("status") != "completed":
            data = await self._poll_upload(call, timeout_s, deadline, path, data, organisation_id)
            status = 200
        return to_result(call, data, existed, status)

    async def _exchange(
        self,
        call: Call,
        timeout_s: float,
        deadline: float,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool, int]:
        """Send one request; the answer's data, whether it reports an existing object, status."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise _timed_out(call, timeout_s)
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._wire.send(
                    Request(method, self.base_url + path, headers, body, remaining)
                )
        except TimeoutError:
            raise _timed_out(call, timeout_s) from None
        except WireError as exc:  # connection refused/reset, protocol errors, ...
            raise call.error(
                TransientPlatformError,
                status=None,
                code="CONNECTION_ERROR",
                summary=f"could not talk to the platform at {self.base_url} ({exc.kind})",
                advice=f"{RETRYING}; check REGBATCH_PLATFORM_URL and that the platform is up",
                platform_message=str(exc),
            ) from None
        data, existed = read_answer(call, answer.status, answer.content, answer.retry_after)
        return data, existed, answer.status

    async def _poll_upload(
        self,
        call: Call,
        timeout_s: float,
        deadline: float,
        upload_path: str,
        accepted: Mapping[str, Any],
        organisation_id: str,
    ) -> dict[str, Any]:
        """Poll an accepted image upload until it completes, fails or the step's time is up."""
        upload_id = accepted.get("upload_id")
        if not isinstance(upload_id, str) or not upload_id:
            raise call.error(
                PermanentPlatformError,
                status=None,
                code="INVALID_RESPONSE",
                summary="the platform accepted the upload but gave no upload_id to poll",
                advice=WRONG_API,
            )
        path = f"{upload_path}/{quote(upload_id, safe='')}"
        poll = Call(call.step, f"GET {path}", call.secrets)
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _timed_out(poll, timeout_s)
            await asyncio.sleep(min(self._poll_interval_s, remaining))
            data, _, _ = await self._exchange(
                poll, timeout_s, deadline, "GET", path, {"X-Organisation-ID": organisation_id}
            )
            status = data.get("status")
            if status == "completed":
                return {"upload_id": upload_id, **data}
            if status == "failed":
                error = data.get("error")
                raise poll.error(
                    PermanentPlatformError,
                    status=200,
                    code="UPLOAD_FAILED",
                    summary="the platform reports that the image upload failed",
                    advice="check that the menu's image urls are reachable images, then retry",
                    platform_message=str(error.get("message", ""))
                    if isinstance(error, dict)
                    else "",
                )
            if status not in UPLOAD_PENDING:
                raise poll.error(
                    PermanentPlatformError,
                    status=200,
                    code="INVALID_RESPONSE",
                    summary=f"the upload has an unknown status {str(status)[:40]!r}",
                    advice=WRONG_API,
                )


def _route(key: StepKey, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The path of a step's request and its body (image upload's menuId goes in the path)."""
    path = step(key).path
    if key is not StepKey.IMAGE_UPLOAD:
        return path, dict(payload)
    menu_id = payload.get("menuId")
    if not menu_id:
        raise missing_input(key, "menuId", "build the payload with build_request")
    body = {k: v for k, v in payload.items() if k != "menuId"}
    return path.format(menu_id=quote(str(menu_id), safe="")), body


def _timed_out(call: Call, timeout_s: float) -> PlatformError:
    return call.error(
        TransientPlatformError,
        status=None,
        code="TIMEOUT",
        summary=f"no answer within the step's timeout of {timeout_s:g} s",
        advice=(
            "the retry reuses the Idempotency-Key, so the platform will not perform the step "
            "twice; if it keeps timing out, raise the step's timeout (config.policies)"
        ),
    )
