"""Prefect runs offline: no telemetry, no prompts. Applied before Prefect is first imported."""

from __future__ import annotations

import os

OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLI_PROMPT": "false",
}


def apply_offline_defaults() -> None:
    """Set the offline settings in the environment unless the user set them already."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
