"""``storage.azure``: the parameters of distribution's azure driver, read and checked."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dockyard.storage.drivers.params import ParameterReader

__all__ = ["AzureParameters"]

DEFAULT_REALM = "core.windows.net"
KNOWN = frozenset(
    {
        "accountname",
        "accountkey",
        "container",
        "realm",
        "serviceurl",
        "connectionstring",
        "credentials",
        "rootdirectory",
        "copy_status_poll_max_retry",
        "copy_status_poll_delay",
    }
)
"""Every key of ``storage.azure``."""


class AzureParameters:
    """``storage.azure`` validated; raises ``DriverConfigError`` naming the bad key."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        p = ParameterReader("azure", params, KNOWN)
        self.account_name = p.string("accountname")
        self.account_key = p.string("accountkey")
        conn = p.string("connectionstring")
        endpoint = ""
        if conn:
            fields = dict(
                part.split("=", 1) for part in conn.split(";") if "=" in part
            )
            self.account_name = self.account_name or fields.get("AccountName", "")
            self.account_key = self.account_key or fields.get("AccountKey", "")
            endpoint = fields.get("BlobEndpoint", "")
            if not endpoint and self.account_name:
                protocol = fields.get("DefaultEndpointsProtocol", "https")
                suffix = fields.get("EndpointSuffix", DEFAULT_REALM)
                endpoint = f"{protocol}://{self.account_name}.blob.{suffix}"
        credentials = p.mapping("credentials", "a mapping with a 'type'")
        if credentials is not None:
            kind = str(credentials.get("type") or "")
            if kind != "shared_key":
                raise p.fail(
                    "credentials",
                    f"type {kind!r} is not supported (only shared_key: accountname and "
                    "accountkey)",
                )
            self.account_name = str(credentials.get("accountname") or self.account_name)
            self.account_key = str(credentials.get("accountkey") or self.account_key)
        if not self.account_name:
            raise p.fail("accountname", "missing (required)")
        if not self.account_key:
            raise p.fail("accountkey", "missing (required: shared key authentication)")
        self.container = p.required("container")
        try:
            base64.b64decode(self.account_key, validate=True)
        except ValueError:
            raise p.fail("accountkey", "not valid base64") from None
        realm = p.string("realm") or DEFAULT_REALM
        self.service_url = (
            p.string("serviceurl") or endpoint or f"https://{self.account_name}.blob.{realm}"
        ).rstrip("/")
        scheme = urlsplit(self.service_url).scheme
        if scheme not in ("http", "https") or not urlsplit(self.service_url).netloc:
            raise p.fail("serviceurl", f"{self.service_url!r} is not an http(s) URL")
        root = p.string("rootdirectory").strip("/")
        self.root_prefix = f"{root}/" if root else ""
        self.copy_poll_max_retry = p.integer("copy_status_poll_max_retry", 30, 0, 1_000_000)
        self.copy_poll_delay = p.duration("copy_status_poll_delay", "100ms")
        p.check_unknown()
