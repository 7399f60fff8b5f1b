"""`regbatch demo`: a real batch on the embedded default, with nothing started by hand.

SQLite database in the data directory (a fresh one each time), Prefect's embedded server (unless
PREFECT_API_URL points at one), the sandbox platform in this process with a little latency and
two scripted failures: one transient (retried, succeeds) and one permanent (fails; then the
retry of the failed restaurants succeeds once the fault is gone).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regbatch.errors import ConfigurationError

SAMPLES = Path(__file__).resolve().parent.parent / "examples" / "restaurants.json"
RESTAURANTS = 10
LATENCY_MS = 60
DEMO_SETTINGS = {"onboarding": {"create_user": True, "sync": True}}


@dataclass
class DemoSetup:
    batch_id: Any
    restaurant_names: list[str]
    transient: str
    permanent: str
    sandbox: Any
    control: Any


def prepare_environment(data_dir: Path) -> Path:
    """Point regbatch at a fresh demo database and at the in-process sandbox's settings."""
    from regbatch.db.engine import dispose_engines
    from regbatch.settings import reset_settings

    demo_dir = data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    database = demo_dir / "regbatch-demo.db"
    for leftover in demo_dir.glob("regbatch-demo.db*"):
        leftover.unlink()
    os.environ.update(
        {
            "REGBATCH_DATABASE_URL": f"sqlite:///{database}",
            "REGBATCH_PLATFORM_SERVICE_KEY": "demo-" + secrets.token_hex(12),
            "REGBATCH_ACCOUNT_RATE_LIMIT_SECONDS": "0",
            "REGBATCH_RETRY_DELAY_SCALE": "0.1",
            "REGBATCH_IMAGE_POLL_INTERVAL_SECONDS": "0.2",
        }
    )
    reset_settings()
    dispose_engines()
    return database


def sample_rows() -> list[dict[str, Any]]:
    if not SAMPLES.exists():
        raise ConfigurationError(
            f"the sample restaurants are not at {SAMPLES}; run the demo from a clone installed "
            "with `pip install -e .` (see the README)"
        )
    rows: list[dict[str, Any]] = json.loads(SAMPLES.read_text())
    return rows[:RESTAURANTS]


def set_up() -> DemoSetup:
    """Sandbox running, database migrated, ten restaurants imported, faults set, batch created."""
    from regbatch.db import migrate
    from regbatch.db.engine import session_scope
    from regbatch.db.organisations import create_organisation
    from regbatch.db.restaurants import import_restaurants
    from regbatch.sandbox.control import SandboxControl
    from regbatch.sandbox.server import SandboxServer
    from regbatch.services.batches import create_batch
    from regbatch.settings import get_settings

    key = get_settings().platform_service_key.get_secret_value()
    server = SandboxServer(
        key, latency_ms=LATENCY_MS, account_spacing_s=0, image_processing_s=0.2
    ).start()
    os.environ["REGBATCH_PLATFORM_URL"] = server.url
    from regbatch.settings import reset_settings

    reset_settings()
    control = SandboxControl(server.url, key)
    migrate.upgrade()
    with session_scope() as session:
        org = create_organisation(session, "Demo Foods")
        restaurants = import_restaurants(session, org.id, sample_rows())
        ids = [r.id for r in restaurants]
        names = [r.name for r in restaurants]
    transient, permanent = restaurants[2], restaurants[5]
    control.set_faults(
        [
            {
                "restaurant": str(transient.id),
                "step": "menu_import",
                "kind": "transient",
                "times": 2,
            },
            {"restaurant": str(permanent.id), "step": "payment_configuration", "kind": "permanent"},
        ]
    )
    batch_id = create_batch(
        org.id,
        name="Demo: 10 restaurants",
        restaurant_ids=ids,
        settings=DEMO_SETTINGS,
        execution_mode="parallel",
        concurrency=5,
        created_by="user:demo",
    )
    return DemoSetup(batch_id, names, transient.name, permanent.name, server, control)
