"""Prefect flows: they only decide what runs next; side effects live in tasks and services."""

from regbatch.offline import apply_offline_defaults

apply_offline_defaults()
