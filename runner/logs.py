"""The run logger: Prefect's when code runs in a flow or task run, else the module's own.

Also where a pause stops being an error in the logs: Prefect's engine logs every flow run's end at
ERROR unless it completed, and a paused batch or restaurant ends its run in a Cancelled-type
state named "Paused". `log_pause` says it at INFO instead.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

ENGINE_LOGGER = "prefect.flow_runs"
PAUSED_END = "Finished in state Paused("


def run_logger() -> Any:
    """Prefect's run logger (its lines reach the run's page in the UI), or a plain logger
    outside any run (the orchestration unit tests drive flows' logic without Prefect)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("regbatch.runner")


class PauseIsNotAnError(logging.Filter):
    """Drops the engine's ERROR line for a run that ended paused (`log_pause` said it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.getMessage().startswith(PAUSED_END))


def log_pause(sentence: str) -> None:
    """Log a pause at INFO, and keep the engine from logging the run's paused end as an error."""
    engine = logging.getLogger(ENGINE_LOGGER)
    if not any(isinstance(f, PauseIsNotAnError) for f in engine.filters):
        engine.addFilter(PauseIsNotAnError())
    run_logger().info("%s", sentence)
