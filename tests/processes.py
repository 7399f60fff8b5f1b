"""Processes the tests start in a session of their own (`start_new_session=True`): wait until
one answers over HTTP, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

# A Prefect process worker that gets SIGTERM stops taking runs and then waits for the runs it
# started, however they ended: a test's workers are not worth that wait once their runs are done.
WORKER_GRACE_S = 3.0


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the process's whole group; SIGKILL to it if it has not exited in `grace_s`."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # the group is gone already
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_answering(
    url: str,
    process: subprocess.Popen[bytes],
    timeout_s: float,
    name: str,
    log: Path | None = None,
    interval_s: float = 0.5,
) -> None:
    """Until GET `url` answers 200; RuntimeError naming `name`, with its `log`, if the process
    exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        told = f":\n{log.read_text()}" if log is not None else ""
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}{told}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{name} at {url} did not answer within {timeout_s} s{told}")
        time.sleep(interval_s)
