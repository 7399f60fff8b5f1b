"""Prefect tasks: thin wrappers around side effects (platform calls)."""
