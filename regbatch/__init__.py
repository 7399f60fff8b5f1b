"""regbatch: register many restaurants on the ordering platform in one batch, with Prefect.

`import regbatch` is the Python API (regbatch/api/python.py):

    import regbatch
    batch_id = regbatch.create_batch("Acme Foods", name="Auckland Q4",
                                     restaurant_ids=[...], execution_mode="parallel",
                                     concurrency=5)
    detail = regbatch.run_batch(batch_id)

The functions are loaded on first use, so importing a part of the package (its settings, its
flows) costs nothing more and changes nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "cancel_batch",
    "create_batch",
    "export_batch",
    "get_batch",
    "list_batches",
    "pause_batch",
    "recover",
    "register_restaurant",
    "resume_batch",
    "retry_failed",
    "run_batch",
    "start_batch",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("regbatch.api.python"), name)
    raise AttributeError(f"module 'regbatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
