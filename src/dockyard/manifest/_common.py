"""Field readers shared by the schema parsers: Go's decoding rules, domain errors."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import ManifestInvalid
from dockyard.manifest._gojson import JSONObject, field, member
from dockyard.manifest._types import Descriptor

__all__ = [
    "descriptor",
    "descriptors",
    "freeze",
    "invalid",
    "optional_str",
    "required_digest",
    "schema_version",
    "string_map",
]

_MAX_INT64 = 2**63 - 1
# A descriptor's required members, as folded keys, and as written by every client.
_REQUIRED = frozenset({"mediatype", "digest", "size"})
_PLAIN = frozenset({"mediaType", "digest", "size"})


def invalid(reason: str) -> ManifestInvalid:
    """A :class:`ManifestInvalid` carrying ``reason`` as message and detail."""
    return ManifestInvalid(reason, detail=reason)


def optional_str(value: Any, where: str) -> str | None:
    """A Go ``string`` field: ``None`` when unset or empty, else it must be a string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{where} must be a string")
    return value or None


def schema_version(document: JSONObject, expected: int) -> None:
    """Require ``schemaVersion`` (a Go ``int``) to be ``expected``."""
    version = field(document, "schemaVersion")
    if version is None:
        version = 0
    if isinstance(version, bool) or not isinstance(version, int):
        raise invalid("schemaVersion must be an integer")
    if version != expected:
        raise invalid(f"unrecognized manifest schema version {version}")


def freeze(value: Any) -> Any:
    """A read-only deep copy of decoded JSON (objects become mappings, arrays tuples)."""
    if isinstance(value, dict):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    return value


def string_map(value: Any, where: str) -> Mapping[str, str] | None:
    """A Go ``map[string]string`` (a ``null`` value reads as "", as Go decodes it)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object of strings")
    result: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            item = ""
        if not isinstance(item, str):
            raise invalid(f"{where}[{key!r}] must be a string")
        result[key] = item
    return MappingProxyType(result)


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{where} must be an array of strings")
    return tuple(value)


def _platform(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, JSONObject):
        raise invalid(f"{where} must be an object")
    for name in ("architecture", "os", "os.version", "variant"):
        optional_str(field(value, name), f"{where}.{name}")
    for name in ("os.features", "features"):
        _string_list(field(value, name, null_resets=True), f"{where}.{name}")
    mapping: Mapping[str, Any] = freeze(value)
    return mapping


def required_digest(value: Any, where: str) -> Digest:
    """A digest field (a Go ``string``) that must be set and valid."""
    text = optional_str(value, where)
    if text is None:
        raise invalid(f"{where} is missing")
    try:
        return Digest.parse(text)
    except InvalidDigest as exc:
        raise invalid(f"{where}: {exc}") from exc


def descriptor(value: Any, where: str) -> Descriptor:
    """A content descriptor; ``mediaType``, ``digest`` and ``size`` are required."""
    if not isinstance(value, JSONObject):
        raise invalid(f"{where} must be a descriptor object")
    members = value.folded()
    media_type = optional_str(member(members, "mediatype"), f"{where}.mediaType")
    if media_type is None:
        raise invalid(f"{where}.mediaType is missing")
    digest = required_digest(member(members, "digest"), f"{where}.digest")
    size = member(members, "size")
    if size is None:
        raise invalid(f"{where}.size is missing")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_INT64:
        raise invalid(f"{where}.size must be a non-negative integer")
    if members.keys() <= _REQUIRED:  # the usual layer: nothing optional to read
        return Descriptor(media_type, digest, size)
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=_string_list(member(members, "urls", True), f"{where}.urls"),
        annotations=string_map(member(members, "annotations", True), f"{where}.annotations"),
        artifact_type=optional_str(member(members, "artifacttype"), f"{where}.artifactType"),
        platform=_platform(member(members, "platform", True), f"{where}.platform"),
    )


def _plain_descriptor(value: Any) -> Descriptor | None:
    """The usual layer, ``{"mediaType": str, "digest": str, "size": int}`` and nothing
    else, read without folding keys or naming its place; None for anything else (read
    by :func:`descriptor`, which also words the errors)."""
    if not isinstance(value, JSONObject) or len(value.pairs) != 3 or value.keys() != _PLAIN:
        return None
    media_type, text, size = value["mediaType"], value["digest"], value["size"]
    if not (isinstance(media_type, str) and media_type and isinstance(text, str)
            and type(size) is int and 0 <= size <= _MAX_INT64):
        return None
    try:
        return Descriptor(media_type, Digest.parse(text), size)
    except InvalidDigest:
        return None


def descriptors(value: Any, where: str) -> tuple[Descriptor, ...]:
    """A Go ``[]Descriptor`` (``null`` or absent is empty)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(f"{where} must be an array")
    found = []
    for index, item in enumerate(value):
        plain = _plain_descriptor(item)
        found.append(plain if plain is not None else descriptor(item, f"{where}[{index}]"))
    return tuple(found)
