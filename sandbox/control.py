"""A small synchronous client of the sandbox's control API (/_sandbox/*), for tests and the demo.

It uses urllib so that httpx stays confined to regbatch.platform.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class SandboxControlError(RuntimeError):
    """Raised when the sandbox refuses a control request or cannot be reached."""


class SandboxControl:
    """Set faults, latency and account spacing; read the ledger, request log and stats; reset."""

    def __init__(self, url: str, service_key: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._service_key = service_key
        self._timeout_s = timeout_s

    def set_faults(
        self,
        rules: list[dict[str, Any]],
        *,
        random_transient_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Replace the fault set; each rule: restaurant, step, kind, times?, delay_s?."""
        body = {"rules": rules, "random_transient_rate": random_transient_rate, "seed": seed}
        self._call("POST", "/_sandbox/faults", body)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def set_latency(self, default_ms: float = 0, per_step: dict[str, float] | None = None) -> None:
        self._call(
            "PUT", "/_sandbox/latency", {"default_ms": default_ms, "per_step": per_step or {}}
        )

    def set_account_spacing(self, seconds: float) -> None:
        self._call("PUT", "/_sandbox/config", {"account_spacing_s": seconds})

    def set_image_processing(self, seconds: float) -> None:
        self._call("PUT", "/_sandbox/config", {"image_processing_s": seconds})

    def ledger(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_sandbox/ledger")["entries"])

    def requests(self) -> list[dict[str, Any]]:
        """Every step request received since the last reset, in arrival order (the request log)."""
        return list(self._call("GET", "/_sandbox/requests")["entries"])

    def stats(self) -> dict[str, int]:
        return dict(self._call("GET", "/_sandbox/stats"))

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"X-Service-Key": self._service_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return dict(json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise SandboxControlError(
                f"sandbox {method} {path} answered {exc.code}: {detail}"
            ) from None
        except urllib.error.URLError as exc:
            raise SandboxControlError(
                f"cannot reach the sandbox at {self.url} ({exc.reason}); is it running?"
            ) from None
