"""Prefect tasks: thin wrappers around side effects (platform calls, database writes)."""

from regbatch.offline import apply_offline_defaults

apply_offline_defaults()
