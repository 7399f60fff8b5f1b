"""Webhooks of batch outcomes: the event vocabulary, the JSON payload, and its signature.

Pure functions, no I/O, but `resolved_url_problems`, which asks DNS whether a URL's host is
one webhooks may reach (regbatch.webhook_targets). A delivery POSTs `body` (the compact JSON
of `build_payload`) with the header `X-Regbatch-Signature: t=<unix seconds>,v1=<hex>`, where
`hex` is the HMAC-SHA256, keyed with the subscription's secret, of `f"{t}.".encode() + body`.
A receiver recomputes it over the raw body it received and calls `verify` (constant-time, with
a freshness window against replays).

An attempt that was not answered 2xx raises a WebhookDeliveryError; whether it is worth another
attempt is a property of its type:

    WebhookDeliveryError        (regbatch.errors.RegbatchError)
    ├── TransientWebhookError   no answer (connection failed, timed out), 408, 429 or 5xx
    └── PermanentWebhookError   any other answer (4xx, a redirect): retrying cannot change it
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from regbatch.errors import Problem, RegbatchError, not_one_of
from regbatch.reporting import failing_step
from regbatch.statuses import BatchStatus, JobStatus, StepStatus
from regbatch.steps import step_label
from regbatch.views import BatchDetail, JobView
from regbatch.webhook_targets import resolution_problems, url_target_problems

SIGNATURE_HEADER = "X-Regbatch-Signature"
EVENT_HEADER = "X-Regbatch-Event"
DELIVERY_HEADER = "X-Regbatch-Delivery"
MAX_URL_LENGTH = 2000
_MAX_ERROR_CHARS = 500
# Receivers that are busy or briefly down answer these; any other answer is the receiver's word.
_TRANSIENT_STATUSES = frozenset({408, 429})


class WebhookEvent(StrEnum):
    BATCH_COMPLETED = "batch.completed"
    BATCH_FAILED = "batch.failed"
    BATCH_PAUSED = "batch.paused"
    BATCH_CANCELLED = "batch.cancelled"


_EVENT_BY_STATUS = {
    BatchStatus.COMPLETED: WebhookEvent.BATCH_COMPLETED,
    BatchStatus.FAILED: WebhookEvent.BATCH_FAILED,
    BatchStatus.PAUSED: WebhookEvent.BATCH_PAUSED,
    BatchStatus.CANCELLED: WebhookEvent.BATCH_CANCELLED,
}


def event_for_status(status: str) -> WebhookEvent | None:
    """The event a batch in `status` announces, or None while it is not stopped."""
    return _EVENT_BY_STATUS.get(BatchStatus(status))


def generate_secret() -> str:
    """A new signing secret: 256 random bits, URL-safe."""
    return "whsec_" + secrets.token_urlsafe(32)


def url_problems(url: str, *, allow_private: bool = False) -> list[Problem]:
    """Every reason `url` cannot receive webhooks (empty when it can), DNS left out: see
    regbatch.webhook_targets for the addresses refused and `allow_private`."""
    parts = urlsplit(url.strip())
    shown = _shown(url, parts)
    if parts.scheme not in ("http", "https"):
        return [
            Problem(
                "url",
                f"{shown!r} is not an http or https URL; give the full address, "
                "e.g. https://hooks.example.com/regbatch",
            )
        ]
    problems = []
    if not parts.hostname:
        problems.append(Problem("url", f"{shown!r} has no host; e.g. https://hooks.example.com/x"))
    if any(c.isspace() for c in url.strip()):
        problems.append(Problem("url", f"{shown!r} contains white space; percent-encode it"))
    if len(url) > MAX_URL_LENGTH:
        problems.append(Problem("url", f"has {len(url)} characters; use at most {MAX_URL_LENGTH}"))
    try:
        _ = parts.port  # raises for a port that is not 0-65535
    except ValueError:
        problems.append(Problem("url", f"{shown!r} has an invalid port; use 1 to 65535"))
        return problems
    targets = url_target_problems(redact_url(url.strip()), parts, allow_private)
    problems.extend(Problem("url", problem) for problem in targets)
    return problems


def resolved_url_problems(url: str, *, allow_private: bool = False) -> list[Problem]:
    """Why the host of a well-formed `url` may not receive webhooks once DNS has answered
    (a name that resolves to a refused address); [] when it does not resolve yet, since every
    delivery resolves and checks it again."""
    parts = urlsplit(url.strip())
    if url_problems(url, allow_private=allow_private) or parts.hostname is None:
        return []
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found = resolution_problems(redact_url(url.strip()), parts.hostname, port, allow_private)
    return [Problem("url", problem) for problem in found]


def _shown(url: str, parts: SplitResult) -> str:
    """`url` as a message may show it: never its credentials."""
    if parts.username is None and parts.password is None and "@" not in parts.netloc:
        return url
    try:
        return redact_url(url)
    except ValueError:
        return f"{parts.scheme}://<host with credentials>"


def event_problems(events: Iterable[str]) -> list[Problem]:
    """One problem per name that is not a WebhookEvent."""
    return [
        Problem("events", not_one_of("event", event, WebhookEvent))
        for event in events
        if event not in set(WebhookEvent)
    ]


def redact_url(url: str) -> str:
    """`url` without credentials, query string and fragment: what logs may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def batch_path(batch_id: uuid.UUID) -> str:
    """The batch's path in the REST API."""
    return f"/registration-batches/{batch_id}"


def _failure(job: JobView) -> dict[str, Any]:
    failed = next((s for s in job.steps if s.status == StepStatus.FAILED), None)
    error = (failed.error_message if failed else None) or job.error_message or "failed"
    return {
        "job_id": str(job.id),
        "restaurant_id": str(job.restaurant_id),
        "restaurant_name": job.restaurant_name,
        "step": step_label(failed.step_number, failed.step_key) if failed else None,
        "error": error[:_MAX_ERROR_CHARS],
        "summary": (failing_step(job) or error)[:_MAX_ERROR_CHARS],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def build_payload(
    detail: BatchDetail,
    event: WebhookEvent,
    *,
    retry_batch_id: uuid.UUID | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """The JSON summary of a batch that a webhook delivers (only JSON types inside)."""
    path = batch_path(detail.id)
    payload: dict[str, Any] = {
        "event": str(WebhookEvent(event)),
        "organisation_id": str(detail.organisation_id),
        "batch": {
            "id": str(detail.id),
            "name": detail.name,
            "status": detail.status,
            "counts": {
                "total": detail.total,
                "completed": detail.completed,
                "failed": detail.failed,
                "cancelled": detail.cancelled,
            },
            "started_at": _iso(detail.started_at),
            "completed_at": _iso(detail.completed_at),
            "paused_at": _iso(detail.paused_at),
            "cancelled_at": _iso(detail.cancelled_at),
            "pause_reason": detail.pause_reason,
            "retry_of_batch_id": str(detail.retry_of_batch_id)
            if detail.retry_of_batch_id
            else None,
            "path": path,
        },
        "failed_restaurants": [
            _failure(job) for job in detail.jobs if job.status == JobStatus.FAILED
        ],
        "retry_batch_id": str(retry_batch_id) if retry_batch_id else None,
    }
    if base_url:
        payload["batch"]["url"] = base_url.rstrip("/") + path
    return payload


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 (hex) of `f"{timestamp}.".encode() + body`, keyed with `secret`."""
    message = f"{int(timestamp)}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Regbatch-Signature value: 't=<unix seconds>,v1=<hex>'."""
    return f"t={int(timestamp)},v1={sign(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when `header` signs `body` with `secret` and its timestamp is within the window."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode()
    # Every v1 counts (a sender may sign with an old and a new secret while rotating); bytes,
    # because compare_digest refuses non-ASCII str and a header may carry anything.
    return any(hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates)


def encode_body(payload: dict[str, Any]) -> bytes:
    """The bytes a delivery POSTs and signs: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def is_transient_status(status_code: int) -> bool:
    """True when a receiver's status is worth another attempt: 408, 429 or 5xx."""
    return status_code in _TRANSIENT_STATUSES or status_code >= 500


class WebhookDeliveryError(RegbatchError):
    """Raised when one delivery attempt was not answered 2xx; `reason` says how it failed."""

    transient = False

    def __init__(self, message: str, *, reason: str, status_code: int | None, attempt: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code
        self.attempt = attempt


class TransientWebhookError(WebhookDeliveryError):
    """Raised when an attempt got no answer (connection, timeout) or a 408, 429 or 5xx."""

    transient = True


class PermanentWebhookError(WebhookDeliveryError):
    """Raised when the receiver answered anything else (4xx, a redirect): retrying cannot help."""
