"""Owners' platform passwords: generated strong when not given, encrypted at rest with Fernet.

The key comes from REGBATCH_SECRET_KEY, or for the embedded default from `<data_dir>/secret.key`
(created on first use, readable by its owner only). Only the account registration step decrypts.
"""

from __future__ import annotations

import os
import secrets
import string
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

from regbatch.errors import ConfigurationError
from regbatch.settings import get_settings

_ALPHABET = string.ascii_letters + string.digits + "!#%+-=?@^_"


def generate_password(length: int = 20) -> str:
    """A random password with upper, lower, digit and symbol characters."""
    while True:
        candidate = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and any(not c.isalnum() for c in candidate)
        ):
            return candidate


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError:
        raise ConfigurationError(
            "REGBATCH_SECRET_KEY is not a Fernet key; generate one with "
            "python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from None


def _key() -> str:
    settings = get_settings()
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def encrypt(password: str) -> str:
    """The password encrypted with the configured key (text safe to store)."""
    return _fernet(_key()).encrypt(password.encode()).decode()


def decrypt(token: str) -> str:
    """The clear password; raises ConfigurationError when the key does not match."""
    try:
        return _fernet(_key()).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ConfigurationError(
            "a stored password cannot be decrypted with the current REGBATCH_SECRET_KEY; "
            "use the key the restaurants were imported with"
        ) from None
