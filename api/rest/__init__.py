"""The REST API (FastAPI): the seed's batch endpoints, templates and webhooks, per organisation."""

from regbatch.api.rest.app import create_app

__all__ = ["create_app"]
