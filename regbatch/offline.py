"""Prefect runs offline: no telemetry, no prompts. Applied before Prefect is first imported."""

from __future__ import annotations

import os

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLI_PROMPT": "false",
    # The embedded (ephemeral) Prefect server migrates its SQLite database on first start,
    # which takes longer than Prefect's default 20 s on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}

# The embedded server lives only as long as this process and serves no deployments, schedules
# or automations: its background services would only compete for its SQLite database (measured:
# the demo's batch took 21 s with them, 17 s without).
EMBEDDED_SERVER_DEFAULTS = {
    f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "false"
    for service in (
        "SCHEDULER",
        "LATE_RUNS",
        "FOREMAN",
        "REPOSSESSOR",
        "PAUSE_EXPIRATIONS",
        "CANCELLATION_CLEANUP",
        "TRIGGERS",
        "DB_VACUUM",
        "CLEANUP_RECONCILER",
    )
}


def apply_offline_defaults() -> None:
    """Set the offline settings in the environment unless the user set them already."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not os.environ.get("PREFECT_API_URL"):
        for name, value in EMBEDDED_SERVER_DEFAULTS.items():
            os.environ.setdefault(name, value)
