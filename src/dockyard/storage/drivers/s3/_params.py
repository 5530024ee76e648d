"""``storage.s3``: the parameters of distribution's s3-aws driver, read and checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.storage.drivers.params import ParameterReader

__all__ = ["MAX_CHUNK_SIZE", "MIN_CHUNK_SIZE", "S3Parameters"]

MiB = 1 << 20
MIN_CHUNK_SIZE = 5 * MiB
"""S3's smallest part (all but the last)."""
MAX_CHUNK_SIZE = 5 * 1024 * MiB
"""S3's largest part, and the largest single CopyObject."""
DEFAULT_CHUNK_SIZE = 10 * MiB
DEFAULT_COPY_CHUNK_SIZE = 32 * MiB
DEFAULT_COPY_MAX_CONCURRENCY = 100
DEFAULT_COPY_THRESHOLD_SIZE = 32 * MiB
STORAGE_CLASSES = frozenset({
    "NONE", "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
    "INTELLIGENT_TIERING", "OUTPOSTS", "GLACIER_IR", "EXPRESS_ONEZONE",
})
OBJECT_ACLS = frozenset({
    "private", "public-read", "public-read-write", "authenticated-read",
    "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control",
})
KNOWN = frozenset({
    "accesskey", "secretkey", "sessiontoken", "region", "regionendpoint",
    "forcepathstyle", "bucket", "rootdirectory", "secure", "skipverify", "v4auth",
    "encrypt", "keyid", "chunksize", "multipartcopychunksize",
    "multipartcopymaxconcurrency", "multipartcopythresholdsize", "storageclass",
    "objectacl", "useragent", "usedualstack", "accelerate", "loglevel",
})
"""Every key of ``storage.s3``."""
_REGION = re.compile(r"[a-z0-9-]{1,64}")



@dataclass(frozen=True, kw_only=True)
class S3Parameters:
    """``storage.s3`` as distribution reads it (keys lower-cased)."""

    bucket: str
    region: str = ""
    region_endpoint: str = ""
    force_path_style: bool = False
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    secure: bool = True
    skip_verify: bool = False
    encrypt: bool = False
    key_id: str = ""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    multipart_copy_chunk_size: int = DEFAULT_COPY_CHUNK_SIZE
    multipart_copy_max_concurrency: int = DEFAULT_COPY_MAX_CONCURRENCY
    multipart_copy_threshold_size: int = DEFAULT_COPY_THRESHOLD_SIZE
    root_directory: str = ""
    storage_class: str = "STANDARD"
    object_acl: str = ""
    user_agent: str = ""
    use_dual_stack: bool = False
    accelerate: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> S3Parameters:
        """Validate ``storage.s3``; every problem names its key."""
        p = ParameterReader("s3", params, KNOWN)
        endpoint = p.string("regionendpoint")
        region = p.string("region")
        if not region and not endpoint:
            raise p.fail("region", "missing (required unless regionendpoint is set)")
        if region and not _REGION.fullmatch(region):
            raise p.fail("region", f"invalid region {region!r}")
        bucket = p.required("bucket")
        if not p.boolean("v4auth", True):
            raise p.fail("v4auth", "signature version 2 is not supported; remove the key")
        storage_class = p.string("storageclass", "STANDARD").upper()
        if storage_class not in STORAGE_CLASSES:
            raise p.fail(
                "storageclass", f"expected one of {', '.join(sorted(STORAGE_CLASSES))}"
            )
        acl = p.string("objectacl")
        if acl and acl not in OBJECT_ACLS:
            raise p.fail("objectacl", f"expected one of {', '.join(sorted(OBJECT_ACLS))}")
        p.string("loglevel")  # accepted as distribution does; botocore logs via `log`
        result = cls(
            bucket=bucket,
            region=region,
            region_endpoint=endpoint,
            # distribution 2.8 always uses path-style requests with regionendpoint.
            force_path_style=p.boolean("forcepathstyle", bool(endpoint)),
            access_key=p.string("accesskey"),
            secret_key=p.string("secretkey"),
            session_token=p.string("sessiontoken"),
            secure=p.boolean("secure", True),
            skip_verify=p.boolean("skipverify", False),
            encrypt=p.boolean("encrypt", False),
            key_id=p.string("keyid"),
            chunk_size=p.integer("chunksize", DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
            multipart_copy_chunk_size=p.integer(
                "multipartcopychunksize", DEFAULT_COPY_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE
            ),
            multipart_copy_max_concurrency=p.integer(
                "multipartcopymaxconcurrency", DEFAULT_COPY_MAX_CONCURRENCY, 1, 10_000
            ),
            multipart_copy_threshold_size=p.integer(
                "multipartcopythresholdsize", DEFAULT_COPY_THRESHOLD_SIZE, 0, MAX_CHUNK_SIZE
            ),
            root_directory=p.string("rootdirectory"),
            storage_class=storage_class,
            object_acl=acl,
            user_agent=p.string("useragent"),
            use_dual_stack=p.boolean("usedualstack", False),
            accelerate=p.boolean("accelerate", False),
        )
        p.check_unknown()
        return result

    @property
    def endpoint_url(self) -> str | None:
        endpoint = self.region_endpoint
        if not endpoint:
            return None
        if "://" not in endpoint:
            endpoint = f"{'https' if self.secure else 'http'}://{endpoint}"
        return endpoint

