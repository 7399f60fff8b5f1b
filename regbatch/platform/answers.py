"""How the platform's answers become step results or typed errors (no HTTP library here).

    2xx with "success": true             -> the step's result
    409 ALREADY_EXISTS with `existing`   -> the result built from `existing`, already_existed=true
    409 IN_PROGRESS                      -> RateLimitedError, retry_after from Retry-After: the
                                            platform is still processing a request with the same
                                            Idempotency-Key; wait, then ask again with that key
    408, 5xx                             -> TransientPlatformError
    429                                  -> RateLimitedError, retry_after from Retry-After
    other 4xx (other 409s too), 1xx, 3xx -> PermanentPlatformError
    2xx without "success": true, a body that is not a JSON object, a result missing fields
                                         -> PermanentPlatformError

Errors carry `details` = {status_code, code, message, step, endpoint}: `message` is the tail of the
platform's own message with every known secret scrubbed; never the request body or headers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from regbatch.errors import (
    PermanentPlatformError,
    PlatformError,
    RateLimitedError,
    TransientPlatformError,
)
from regbatch.steps import StepKey, step

MESSAGE_TAIL = 300
DEFAULT_RETRY_AFTER_S = 1.0

FIX_INPUT = "fix the input named in the message in the restaurant's configuration, then retry"
RETRYING = "the step is retried with backoff; if it keeps failing, check the platform's status"
WRONG_API = (
    "the answer is not what the registration API returns; check that REGBATCH_PLATFORM_URL "
    "points at the registration platform"
)


@dataclass(frozen=True)
class Call:
    """One request to the platform as errors describe it: the step and endpoint, never the body."""

    step: StepKey
    endpoint: str
    secrets: tuple[str, ...] = ()
    """Values (service key, password) scrubbed from any platform text before it is kept."""

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def error(
        self,
        cls: type[PlatformError],
        *,
        status: int | None,
        code: str,
        summary: str,
        advice: str,
        platform_message: str = "",
        **extra: Any,
    ) -> PlatformError:
        """A typed error naming the step, the status and the fix, with safe `details`."""
        tail = self.scrub(platform_message.strip())[-MESSAGE_TAIL:]
        details = {
            "status_code": status,
            "code": code,
            "message": tail,
            "step": str(self.step),
            "endpoint": self.endpoint,
        }
        text = f"{self.step} failed: {summary} ({self.endpoint})"
        if tail:
            text += f": {tail}"
        return cls(f"{text}; {advice}", status_code=status, code=code, details=details, **extra)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP-date); 1.0 when absent or bad."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_S
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER_S
    return max(0.0, seconds)


def read_answer(
    call: Call, status: int, content: bytes, retry_after: str | None = None
) -> tuple[dict[str, Any], bool]:
    """The data of a successful answer and whether it reports an existing object; else raises."""
    body = _json(content)
    code, message = _code_and_message(body, content)
    if status == 409 and code == "ALREADY_EXISTS":
        existing = body.get("existing") if isinstance(body, dict) else None
        if existing is None and isinstance(body, dict) and isinstance(body.get("error"), dict):
            existing = body["error"].get("existing")
        if isinstance(existing, dict):
            return existing, True
        raise call.error(
            PermanentPlatformError,
            status=status,
            code=code,
            summary="the platform answered 409 ALREADY_EXISTS without the existing ids",
            advice="look the object up on the platform and record its ids by hand",
            platform_message=message,
        )
    if 200 <= status < 300:
        return _successful_body(call, status, body, code, message), False
    raise _status_error(call, status, code or f"HTTP_{status}", message, retry_after)


def to_result(
    call: Call, data: dict[str, Any], already_existed: bool, status: int | None = None
) -> dict[str, Any]:
    """The step's typed result as a JSON-safe dict; PermanentPlatformError if fields are missing."""
    model = step(call.step).result_model
    try:
        result = model.model_validate({**data, "already_existed": already_existed})
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise call.error(
            PermanentPlatformError,
            status=status,
            code="INVALID_RESPONSE",
            summary=f"the platform answered {status} without valid fields {', '.join(fields)}",
            advice=WRONG_API,
        ) from None
    return result.model_dump(mode="json")


def _successful_body(
    call: Call, status: int, body: Any, code: str | None, message: str
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise call.error(
            PermanentPlatformError,
            status=status,
            code="INVALID_RESPONSE",
            summary=f"the platform answered {status} with a body that is not a JSON object",
            advice=WRONG_API,
            platform_message=message,
        )
    if body.get("success") is True:
        return body
    if body.get("success") is False:
        raise call.error(
            PermanentPlatformError,
            status=status,
            code=code or "SUCCESS_FALSE",
            summary=f"the platform answered {status} but with success: false ({code or 'no code'})",
            advice=f"the step did not happen; {FIX_INPUT}",
            platform_message=message,
        )
    raise call.error(
        PermanentPlatformError,
        status=status,
        code="INVALID_RESPONSE",
        summary=f'the platform answered {status} without "success": true',
        advice=WRONG_API,
        platform_message=message,
    )


def _status_error(
    call: Call, status: int, code: str, message: str, retry_after: str | None
) -> PlatformError:
    said = f"the platform answered {status} {code}"
    if status == 409 and code == "IN_PROGRESS":
        wait = parse_retry_after(retry_after)
        return call.error(
            RateLimitedError,
            status=status,
            code=code,
            summary=f"{said} (the same request is still being processed)",
            advice=(
                "the platform is still processing the same request; the step waits "
                f"{wait:g} s and asks again with the same Idempotency-Key"
            ),
            platform_message=message,
            retry_after=wait,
        )
    if status == 429:
        wait = parse_retry_after(retry_after)
        return call.error(
            RateLimitedError,
            status=status,
            code=code,
            summary=f"{said} (rate limited)",
            advice=f"the platform allows this call again in {wait:g} s; the step is retried then",
            platform_message=message,
            retry_after=wait,
        )
    if status == 408 or status >= 500:
        return call.error(
            TransientPlatformError,
            status=status,
            code=code,
            summary=said,
            advice=RETRYING,
            platform_message=message,
        )
    if status in (401, 403):
        advice = "check REGBATCH_PLATFORM_SERVICE_KEY and the organisation's access to the platform"
    elif status == 404:
        advice = (
            "an id this step sends (from an earlier step's result or the configuration) is "
            "unknown to the platform; check it, then retry"
        )
    elif 400 <= status < 500:
        advice = FIX_INPUT
    else:
        advice = WRONG_API
    return call.error(
        PermanentPlatformError,
        status=status,
        code=code,
        summary=said,
        advice=advice,
        platform_message=message,
    )


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def _code_and_message(body: Any, content: bytes) -> tuple[str | None, str]:
    """The platform's error code and message, from {"error": {...}}, {"detail": ...} or text."""
    if not isinstance(body, dict):
        return None, content.decode("utf-8", "replace")
    error = body.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return (str(code) if code else None), str(error.get("message") or "")
    if isinstance(error, str):
        return None, error
    detail = body.get("message") or body.get("detail") or ""
    return None, detail if isinstance(detail, str) else json.dumps(detail)
