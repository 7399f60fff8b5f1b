"""Drive the `regbatch` CLI: in-process (fast) or as the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

REGBATCH = str(Path(sys.executable).with_name("regbatch"))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, check: bool = True) -> Result:
    """Run a command in this process (same settings and database as the test)."""
    from regbatch.api.cli import app

    outcome = CliRunner().invoke(app, list(args))
    if outcome.exception and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    result = Result(outcome.exit_code, outcome.stdout, outcome.stderr)
    _check(args, result, check)
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def run(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> Result:
    """Run the installed console script in a subprocess."""
    done = subprocess.run(
        [REGBATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    result = Result(done.returncode, done.stdout, done.stderr)
    _check(args, result, check)
    return result


def _check(args: tuple[str, ...], result: Result, check: bool) -> None:
    if check and result.returncode != 0:
        raise AssertionError(
            f"regbatch {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )


def recovered_status(result: Result, batch_id: uuid.UUID) -> str | None:
    """The status `regbatch recover --json` ended `batch_id` in; None when it did not recover it.

    `recover --org` takes over every stalled batch of the test's organisation, and its exit
    code says whether all of them completed: a test judges only its own batch.
    """
    recovered = json.loads(result.stdout)["recovered"]
    return next((str(b["status"]) for b in recovered if b["id"] == str(batch_id)), None)
