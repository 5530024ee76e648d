"""Media type resolution and the schema2 / OCI parsers."""

from __future__ import annotations

import re
from collections.abc import Callable

from dockyard.digest import Digest
from dockyard.errors import ManifestInvalid, ManifestTooLarge
from dockyard.manifest._common import (
    descriptor,
    descriptors,
    invalid,
    optional_str,
    schema_version,
    string_map,
)
from dockyard.manifest._gojson import JSONObject, field, has_field, loads
from dockyard.manifest._schema1 import parse_schema1
from dockyard.manifest._types import (
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    KNOWN_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    SIGNATURE_KEY,
    Descriptor,
    Manifest,
)

__all__ = ["parse_manifest"]

_SCHEMA1 = frozenset({SCHEMA1_SIGNED, SCHEMA1_UNSIGNED})
# Content-Types that say "JSON" but not which manifest: the body decides.
_GENERIC = frozenset({"application/json"})
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}(?:/{_TOKEN})?")


def _declared_type(content_type: str | None) -> str | None:
    """The media type of a Content-Type header, lower-cased, parameters dropped
    (Go ``mime.ParseMediaType``); ``None`` if the header is absent or empty."""
    if content_type is None or not content_type.strip():
        return None
    essence = content_type.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(essence):
        raise invalid(f"malformed Content-Type {content_type[:200]!r}")
    return essence


def _schema1_variant(media_type: str, document: JSONObject) -> str:
    # distribution unmarshals every schema1 body as a signed manifest; a body that
    # carries signatures is treated as signed whichever schema1 type it was sent as.
    return SCHEMA1_SIGNED if SIGNATURE_KEY in document else media_type


def _resolve_media_type(declared: str | None, document: JSONObject) -> str:
    """Which manifest ``document`` is: from Content-Type, else its ``mediaType``, else
    its shape (``schemaVersion`` 1, ``manifests``, ``config``/``layers``)."""
    in_body = optional_str(field(document, "mediaType"), "mediaType")
    if declared is not None and declared not in _GENERIC:
        if declared not in KNOWN_MEDIA_TYPES:
            raise invalid(f"unsupported manifest media type {declared!r}")
        agrees = in_body is None or in_body == declared
        if declared in _SCHEMA1:
            agrees = in_body is None or in_body in _SCHEMA1
        if not agrees:
            raise invalid(
                f"mediaType {in_body!r} in the manifest does not match Content-Type {declared!r}"
            )
        return _schema1_variant(declared, document) if declared in _SCHEMA1 else declared
    if in_body is not None:
        if in_body not in KNOWN_MEDIA_TYPES:
            raise invalid(f"unsupported manifest media type {in_body!r}")
        return _schema1_variant(in_body, document) if in_body in _SCHEMA1 else in_body
    version = field(document, "schemaVersion")
    if version == 1 and not isinstance(version, bool):
        return _schema1_variant(SCHEMA1_UNSIGNED, document)
    if has_field(document, "manifests"):
        return OCI_INDEX
    if has_field(document, "config") or has_field(document, "layers"):
        return OCI_MANIFEST
    raise invalid("cannot tell the manifest's media type: no Content-Type and no mediaType")


def _require_body_type(document: JSONObject, media_type: str, what: str) -> None:
    # distribution requires Docker schema2 manifests and lists to name themselves.
    in_body = optional_str(field(document, "mediaType"), "mediaType") or ""
    if in_body != media_type:
        raise invalid(f"mediaType in {what} should be '{media_type}' not '{in_body}'")


def _oci_extras(document: JSONObject) -> tuple[str | None, Descriptor | None]:
    artifact_type = optional_str(field(document, "artifactType"), "artifactType")
    subject_value = field(document, "subject", null_resets=True)
    subject = None if subject_value is None else descriptor(subject_value, "subject")
    return artifact_type, subject


def _parse_image(body: bytes, document: JSONObject, media_type: str) -> Manifest:
    """Docker schema2 or OCI image manifest: ``config`` and ``layers``."""
    schema_version(document, 2)
    if media_type == DOCKER_SCHEMA2:
        _require_body_type(document, media_type, "manifest")
    elif field(document, "manifests", null_resets=True) is not None:
        raise invalid("manifest: expected manifest but found index")
    config_value = field(document, "config")
    if config_value is None:
        raise invalid("config is missing")
    config = descriptor(config_value, "config")
    layers = descriptors(field(document, "layers", null_resets=True), "layers")
    if media_type != OCI_MANIFEST:
        return Manifest(media_type, Digest.of(body), body, config=config, layers=layers)
    artifact_type, subject = _oci_extras(document)
    return Manifest(
        media_type,
        Digest.of(body),
        body,
        config=config,
        layers=layers,
        subject=subject,
        # The referrers API reports config.mediaType when artifactType is absent.
        artifact_type=artifact_type or config.media_type,
        annotations=string_map(field(document, "annotations", null_resets=True), "annotations"),
    )


def _parse_index(body: bytes, document: JSONObject, media_type: str) -> Manifest:
    """Docker manifest list or OCI image index: ``manifests``."""
    schema_version(document, 2)
    if media_type == DOCKER_MANIFEST_LIST:
        _require_body_type(document, media_type, "manifest list")
    elif any(field(document, name, null_resets=True) is not None for name in ("config", "layers")):
        raise invalid("index: expected index but found manifest")
    children = descriptors(field(document, "manifests", null_resets=True), "manifests")
    if media_type != OCI_INDEX:
        return Manifest(media_type, Digest.of(body), body, manifests=children)
    artifact_type, subject = _oci_extras(document)
    return Manifest(
        media_type,
        Digest.of(body),
        body,
        manifests=children,
        subject=subject,
        artifact_type=artifact_type,
        annotations=string_map(field(document, "annotations", null_resets=True), "annotations"),
    )


_PARSERS: dict[str, Callable[[bytes, JSONObject, str], Manifest]] = {
    DOCKER_SCHEMA2: _parse_image,
    OCI_MANIFEST: _parse_image,
    DOCKER_MANIFEST_LIST: _parse_index,
    OCI_INDEX: _parse_index,
    SCHEMA1_SIGNED: parse_schema1,
    SCHEMA1_UNSIGNED: parse_schema1,
}


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Parse and validate a manifest as received in a PUT.

    ``content_type`` is the request's Content-Type header (``None`` if absent).
    Nothing is reformatted: the digest is of ``body`` itself (for signed schema1, of
    its signed payload). Raises :class:`~dockyard.errors.ManifestTooLarge`
    over :data:`MAX_MANIFEST_SIZE`, :class:`~dockyard.errors.ManifestUnverified`
    for schema1 signatures that are missing or do not verify, ``NameInvalid`` /
    ``TagInvalid`` for a schema1 ``name`` / ``tag`` that breaks the grammar, and
    :class:`~dockyard.errors.ManifestInvalid` for anything else wrong.
    """
    if len(body) > MAX_MANIFEST_SIZE:
        raise ManifestTooLarge(
            f"manifest of {len(body)} bytes exceeds the limit of {MAX_MANIFEST_SIZE} bytes",
            detail={"size": len(body), "limit": MAX_MANIFEST_SIZE},
        )
    declared = _declared_type(content_type)
    try:
        document = loads(body)
    except (ValueError, RecursionError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}", detail=str(exc)) from exc
    if not isinstance(document, JSONObject):
        raise invalid("manifest must be a JSON object")
    media_type = _resolve_media_type(declared, document)
    return _PARSERS[media_type](body, document, media_type)
