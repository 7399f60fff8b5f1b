"""Persistence: models, migrations, engines, and data functions that take a session."""
