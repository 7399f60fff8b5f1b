"""Stop a process the tests started in a session of its own (`start_new_session=True`)."""

from __future__ import annotations

import os
import signal
import subprocess

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
