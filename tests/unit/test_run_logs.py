"""A pause is not an error: the engine's ERROR line for a paused end is dropped, the flow's own
INFO sentence stays, and every other error still gets through."""

from __future__ import annotations

import logging

import pytest

from regbatch.runner.logs import ENGINE_LOGGER, PauseIsNotAnError, log_pause


def test_a_paused_end_is_said_at_info_and_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = logging.getLogger(ENGINE_LOGGER)
    try:
        with caplog.at_level(logging.INFO):
            log_pause("Batch paused, not failed. Q4: paused by user:ops")
            log_pause("Batch paused, not failed. again")  # one filter, however often
            engine.error("Finished in state Paused('Q4: paused by user:ops', type=CANCELLED)")
            engine.error("Finished in state Failed('Q4: failed')")
            engine.info("Finished in state Completed()")
        seen = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert (logging.INFO, "Batch paused, not failed. Q4: paused by user:ops") in seen
        assert not [m for level, m in seen if level >= logging.ERROR and "Paused" in m]
        assert (logging.ERROR, "Finished in state Failed('Q4: failed')") in seen
        assert (logging.INFO, "Finished in state Completed()") in seen
        assert sum(isinstance(f, PauseIsNotAnError) for f in engine.filters) == 1
    finally:
        for f in [f for f in engine.filters if isinstance(f, PauseIsNotAnError)]:
            engine.removeFilter(f)
