"""The registration platform: request building, the HTTP client, and typed step results.

`PlatformClient` and `build_request` are loaded on first use: the step table
(`regbatch.steps`) imports this package's builders and result models, and the client reads the
step table, so importing the package itself must not import the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regbatch.platform.client import PlatformClient
    from regbatch.platform.requests import build_request

__all__ = ["PlatformClient", "build_request"]

_HOMES = {
    "PlatformClient": "regbatch.platform.client",
    "build_request": "regbatch.platform.requests",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'regbatch.platform' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
