"""Spec error codes, the JSON error envelope, and the mapping from domain errors.

Handlers ``raise``; one middleware turns the exception into
``{"errors": [{"code", "message", "detail"}]}`` with the status of the code.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from aiohttp import web

from dockyard import errors as domain

__all__ = ["ErrorCode", "RegistryError", "error_response", "from_domain"]


class ErrorCode(Enum):
    """Each code of the OCI/Docker spec with its message and HTTP status."""

    BLOB_UNKNOWN = ("blob unknown to registry", 404)
    BLOB_UPLOAD_INVALID = ("blob upload invalid", 400)
    BLOB_UPLOAD_UNKNOWN = ("blob upload unknown to registry", 404)
    DIGEST_INVALID = ("provided digest did not match uploaded content", 400)
    MANIFEST_BLOB_UNKNOWN = ("blob unknown to registry", 400)
    MANIFEST_INVALID = ("manifest invalid", 400)
    MANIFEST_UNKNOWN = ("manifest unknown", 404)
    MANIFEST_UNVERIFIED = ("manifest failed signature verification", 400)
    NAME_INVALID = ("invalid repository name", 400)
    NAME_UNKNOWN = ("repository name not known to registry", 404)
    PAGINATION_NUMBER_INVALID = ("invalid number of results requested", 400)
    RANGE_INVALID = ("invalid content range", 416)
    SIZE_INVALID = ("provided length did not match content length", 400)
    TAG_INVALID = ("manifest tag did not match URI", 400)
    UNAUTHORIZED = ("authentication required", 401)
    DENIED = ("requested access to the resource is denied", 403)
    UNSUPPORTED = ("The operation is unsupported.", 405)
    TOOMANYREQUESTS = ("too many requests", 429)
    NOT_FOUND = ("not found", 404)
    UNKNOWN = ("unknown error", 500)
    UNAVAILABLE = ("service unavailable", 503)

    @property
    def message(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]


class RegistryError(Exception):
    """An error to send to the client as the spec's JSON envelope."""

    def __init__(
        self,
        code: ErrorCode,
        detail: Any = None,
        *,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.detail = detail
        self.message = message or code.message
        self.status = status or code.status
        self.headers = headers or {}


# Most specific class first: the first isinstance match wins.
_DOMAIN_CODES: tuple[tuple[type[domain.RegistryFault], ErrorCode], ...] = (
    (domain.NameInvalid, ErrorCode.NAME_INVALID),
    (domain.NameUnknown, ErrorCode.NAME_UNKNOWN),
    (domain.DigestInvalid, ErrorCode.DIGEST_INVALID),
    (domain.SizeInvalid, ErrorCode.SIZE_INVALID),
    (domain.BlobUnknown, ErrorCode.BLOB_UNKNOWN),
    (domain.BlobUploadUnknown, ErrorCode.BLOB_UPLOAD_UNKNOWN),
    (domain.BlobUploadInvalid, ErrorCode.BLOB_UPLOAD_INVALID),
    (domain.RangeInvalid, ErrorCode.RANGE_INVALID),
    (domain.ManifestUnknown, ErrorCode.MANIFEST_UNKNOWN),
    (domain.ManifestBlobUnknown, ErrorCode.MANIFEST_BLOB_UNKNOWN),
    (domain.ManifestUnverified, ErrorCode.MANIFEST_UNVERIFIED),
    (domain.ManifestTooLarge, ErrorCode.SIZE_INVALID),
    (domain.ManifestInvalid, ErrorCode.MANIFEST_INVALID),
    (domain.TagInvalid, ErrorCode.TAG_INVALID),
    (domain.TagImmutable, ErrorCode.DENIED),
    (domain.Unsupported, ErrorCode.UNSUPPORTED),
    (domain.ReadOnly, ErrorCode.UNSUPPORTED),
    (domain.TooManyRequests, ErrorCode.TOOMANYREQUESTS),
    (domain.BackendUnavailable, ErrorCode.UNAVAILABLE),
)


def from_domain(exc: domain.RegistryFault) -> RegistryError:
    """Map a domain error to the most specific spec code."""
    for cls, code in _DOMAIN_CODES:
        if isinstance(exc, cls):
            detail = exc.detail
            if detail is None and str(exc) != cls.__name__:
                detail = str(exc)
            headers: dict[str, str] = {}
            if isinstance(exc, domain.TooManyRequests):
                headers["Retry-After"] = exc.retry_after
            elif isinstance(exc, domain.BackendUnavailable):
                headers["Retry-After"] = "5"
            message = "registry is in read-only mode" if isinstance(exc, domain.ReadOnly) else None
            if isinstance(exc, domain.TagImmutable):
                message = str(exc)
            return RegistryError(code, detail, message=message, headers=headers)
    return RegistryError(ErrorCode.UNKNOWN, str(exc))


def error_response(err: RegistryError, *, with_body: bool = True) -> web.Response:
    """The JSON envelope for ``err`` (no body for HEAD requests)."""
    body = {"errors": [{"code": err.code.name, "message": err.message, "detail": err.detail}]}
    return web.Response(
        status=err.status,
        body=json.dumps(body).encode() if with_body else None,
        content_type="application/json",
        headers=err.headers,
    )
