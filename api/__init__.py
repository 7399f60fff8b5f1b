"""Interfaces: the `regbatch` CLI (api.cli) and, later, the REST API."""
