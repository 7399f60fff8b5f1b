"""Prefect flows: they decide what runs next; side effects happen in tasks and the ledger."""
