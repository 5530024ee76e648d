"""``storage.gcs``: the parameters of distribution's gcs driver, read and checked."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dockyard.storage.drivers.params import ParameterReader

__all__ = ["MIN_CHUNK_SIZE", "GCSParameters"]

MIN_CHUNK_SIZE = 256 << 10
DEFAULT_CHUNK_SIZE = 16 << 20
DEFAULT_MAX_CONCURRENCY = 50
KNOWN = frozenset(
    {
        "bucket",
        "keyfile",
        "credentials",
        "rootdirectory",
        "chunksize",
        "maxconcurrency",
        "useragent",
        "endpoint",
    }
)
"""Every key of ``storage.gcs``."""


class GCSParameters:
    """``storage.gcs`` validated; raises ``DriverConfigError`` naming the bad key.

    ``environ`` is where ``STORAGE_EMULATOR_HOST`` is looked up (the process's).
    """

    def __init__(self, params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        p = ParameterReader("gcs", params, KNOWN)
        self.bucket = p.required("bucket")
        root = p.string("rootdirectory").strip("/")
        self.root_prefix = f"{root}/" if root else ""
        self.chunk_size = p.integer("chunksize", DEFAULT_CHUNK_SIZE, 1, 1 << 40)
        if self.chunk_size % MIN_CHUNK_SIZE:
            raise p.fail(
                "chunksize", f"{self.chunk_size} must be a positive multiple of {MIN_CHUNK_SIZE}"
            )
        self.max_concurrency = p.integer(
            "maxconcurrency", DEFAULT_MAX_CONCURRENCY, 1, 1_000_000
        )
        self.user_agent = p.string("useragent")
        self.service_data: dict[str, Any] | None = None
        keyfile = p.string("keyfile")
        credentials = p.mapping("credentials", "the service account key as a mapping")
        if keyfile and credentials is not None:
            raise p.fail("keyfile", "give keyfile or credentials, not both")
        if keyfile:
            try:
                with open(keyfile, encoding="utf-8") as f:
                    self.service_data = json.load(f)
            except (OSError, ValueError) as exc:
                raise p.fail("keyfile", f"{keyfile}: {exc}") from None
            if not isinstance(self.service_data, dict):
                raise p.fail("keyfile", "the service account key must be a JSON object")
        elif credentials is not None:
            self.service_data = dict(credentials)
        endpoint = p.string("endpoint") or environ.get("STORAGE_EMULATOR_HOST") or ""
        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if endpoint and (
            urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc
        ):
            raise p.fail("endpoint", f"{endpoint!r} is not an http(s) URL")
        self.endpoint = endpoint.rstrip("/")
        p.check_unknown()

    @property
    def signing_key(self) -> tuple[str, str] | None:
        """(client_email, private_key PEM) when URLs can be signed locally."""
        data = self.service_data or {}
        email, key = data.get("client_email"), data.get("private_key")
        if isinstance(email, str) and isinstance(key, str) and email and key:
            return email, key
        return None

