"""Settings read from a changed environment for one block of a test."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from regbatch.settings import reset_settings


@contextmanager
def settings_env(values: Mapping[str, str]) -> Iterator[None]:
    """The environment variables `values` (REGBATCH_... names) set for the block, the settings
    read afresh from them; on the way out, even on an error, the environment as it was and the
    settings read afresh again."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        os.environ.update(values)
        reset_settings()
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()
