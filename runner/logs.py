"""The run logger: Prefect's when code runs in a flow or task run, else the module's own."""

from __future__ import annotations

import logging
from typing import Any

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def run_logger() -> Any:
    """Prefect's run logger (its lines reach the run's page in the UI), or a plain logger
    outside any run (the orchestration unit tests drive flows' logic without Prefect)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("regbatch.runner")
