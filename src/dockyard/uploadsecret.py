"""The key of upload-state tokens (``http.secret``), fixed before the fork so that any
worker, and with a shared secret any instance, can continue any upload.
"""

from __future__ import annotations

import logging
import os
import secrets

from dockyard.config import Config, ConfigError

__all__ = ["upload_secret"]

log = logging.getLogger("dockyard")


def upload_secret(config: Config) -> bytes:
    """The key of upload-state tokens: ``http.secret``; else the one kept in
    ``http.secret_file`` (generated there on first start); else a random one (the
    configuration warned that uploads then stay with this instance and start)."""
    http = config.http
    if http.secret:
        return http.secret.encode()
    if http.secret_file:
        return _kept_secret(http.secret_file)
    return secrets.token_bytes(32)


def _kept_secret(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except FileNotFoundError:
        pass
    else:
        if not secret:
            raise ConfigError(
                f"http.secret: {path} is empty; delete it for a new one or set http.secret",
                "http.secret",
            )
        log.info("http.secret: not set; using the one kept in %s", path)
        return secret
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Written whole under a temporary name, then linked into place: a start racing
    # this one reads either no file or the complete secret, never a partial one.
    partial = f"{path}.{os.getpid()}.tmp"
    secret = secrets.token_hex(32).encode()
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(secret + b"\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(partial, path)
    except FileExistsError:
        return _kept_secret(path)
    finally:
        os.unlink(partial)
    log.info(
        "http.secret: not set; generated one in %s (mode 0600), kept for restarts and "
        "workers; several instances must set the same http.secret instead",
        path,
    )
    return secret
