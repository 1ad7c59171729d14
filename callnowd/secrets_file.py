"""The daemon's secret key (CSRF tokens, HMACs): one file, created on first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32


class SecretFileError(Exception):
    """The key file exists but cannot be used."""


def load_or_create_secret(path: Path) -> bytes:
    """Return the key stored at ``path``, creating it (mode 0600) when absent.

    Every daemon sharing a store must share this file (copy it) so tokens issued
    by one are accepted by the others.

    Raises:
        SecretFileError: unreadable, or shorter than 32 bytes.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_secret(path)  # another process won the race
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
    except OSError as e:
        raise SecretFileError(f"{path}: cannot read the secret key: {e}") from e
    if len(data) < KEY_BYTES:
        raise SecretFileError(f"{path}: the secret key must have at least 32 bytes")
    return data
