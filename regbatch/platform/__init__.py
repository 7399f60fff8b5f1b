"""The registration platform: request building, the HTTP client, and typed step results."""

from regbatch.platform.client import PlatformClient
from regbatch.platform.requests import build_request

__all__ = ["PlatformClient", "build_request"]
