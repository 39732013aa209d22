"""The manager token: from MANAGER_TOKEN, or from a file only its owner can read.

A token is never written to a log: log shippers collect logs, and whoever reads one could
approve orders. When none is configured, one is generated into MANAGER_TOKEN_FILE (`make run`
points it at `.data/manager-token`), where only the file's owner can read it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from app.config import Settings

log = logging.getLogger("app")


class ManagerTokenError(RuntimeError):
    """No usable manager token: the service refuses to start rather than run unguarded."""


def manager_token(settings: Settings) -> str:
    if settings.manager_token is not None and settings.manager_token.get_secret_value():
        return settings.manager_token.get_secret_value()
    path = settings.manager_token_file
    if path is None:
        raise ManagerTokenError(
            "set MANAGER_TOKEN (the manager endpoints' bearer token) or MANAGER_TOKEN_FILE "
            "(a file, mode 0600, holding it; created with a new token if it does not exist)"
        )
    if _create(path):
        log.warning("MANAGER_TOKEN is not set; generated a manager token into %s (mode 0600)", path)
    else:
        log.info("manager token read from %s", path)
    return _read(path)


def _create(path: Path) -> bool:
    """Write a new token to `path` unless it exists; whole or not at all, even when several
    replicas race: the token is written to a private temporary file, then linked into place
    (a link fails rather than replace a file another process created first)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(24) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _read(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as error:
        raise ManagerTokenError(f"MANAGER_TOKEN_FILE {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ManagerTokenError(
            f"MANAGER_TOKEN_FILE {path} is open to other users (mode {stat.S_IMODE(mode):04o}); "
            "make it readable by its owner only: chmod 600"
        )
    if not token:
        raise ManagerTokenError(f"MANAGER_TOKEN_FILE {path} is empty")
    return token
