"""What a manifest references, and the rules for layers fetched from elsewhere.

All of this follows distribution 2.8's ``verifyManifest`` in
``registry/storage/schema2manifesthandler.go`` and ``ocimanifesthandler.go``, which
walks ``References()`` (``config``, then ``layers``) and for each descriptor::

    schema2, mediaType == foreign layer  ->  URLs required ("missing URL on layer"),
                                             each URL checked ("invalid URL on layer");
                                             the blob itself is never looked up
    OCI, mediaType in the 4 layer types  ->  each URL checked ("invalid URL on layer");
                                             no URLs: the blob must exist
    anything else                        ->  no URLs: the blob must exist;
                                             with URLs: accepted unchecked
                                             ("regular layers may have foreign urls")

A URL is acceptable if Go's ``url.Parse`` takes it, its scheme is http or https,
it has no fragment, it matches one of the ``validation.manifests.urls.allow``
patterns (when any are configured) and none of the ``deny`` patterns (unanchored
search, as Go's ``MatchString`` on the patterns joined with ``|``).

distribution reports both URL failures as ``ErrManifestBlobUnknown{Digest}`` next to
the plain error (which its handler turns into a 500 UNKNOWN); dockyard raises
:class:`~dockyard.errors.ManifestBlobUnknown` with that message and the
digest as detail, so the client gets MANIFEST_BLOB_UNKNOWN and a 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from dockyard.errors import ManifestBlobUnknown
from dockyard.manifest._types import (
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    OCI_INDEX,
    OCI_LAYER_TYPES,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    Descriptor,
    Manifest,
)

__all__ = ["foreign_layer_check", "referenced_blobs", "referenced_manifests", "url_allowed"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_ASCII_OK = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'()*+,;=:[]<>\"%"
)
_USERINFO_OK = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@"
)
_PORT = re.compile(r"(?::[0-9]*)?")


def _valid_host(host: str) -> bool:
    """Go ``parseHost``: an optional numeric port, no stray ASCII, no %-encoded ASCII
    other than ``%25`` (IPv6 zones)."""
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0 or not _PORT.fullmatch(host[end + 1 :]):
            return False
    else:
        colon = host.rfind(":")
        if colon >= 0 and not _PORT.fullmatch(host[colon:]):
            return False
    for index, char in enumerate(host):
        if char == "%":
            escape = host[index + 1 : index + 3]
            if escape != "25" and int(escape, 16) < 0x80:
                return False
        elif char < "\x80" and char not in _HOST_ASCII_OK:
            return False
    return True


def _go_url(raw: str) -> tuple[str, str] | None:
    """``(scheme, fragment)`` of ``raw`` as Go ``url.Parse`` reads it, or ``None`` if
    ``url.Parse`` returns an error."""
    if any(c < " " or c == "\x7f" for c in raw) or _BAD_ESCAPE.search(raw):
        return None
    rest, _, fragment = raw.partition("#")
    if rest.startswith(":"):
        return None  # "missing protocol scheme"
    match = _SCHEME.match(rest)
    if match is None:
        return "", fragment
    scheme = match.group()[:-1].lower()
    rest = rest[match.end() :]
    rest = rest.partition("?")[0]
    if rest.startswith("//"):
        authority = rest[2:].partition("/")[0]
        userinfo, at, host = authority.rpartition("@")
        if at and not all(c in _USERINFO_OK for c in userinfo):
            return None
        if not _valid_host(host):
            return None
    return scheme, fragment


def url_allowed(
    url: str, allow: Sequence[re.Pattern[str]], deny: Sequence[re.Pattern[str]]
) -> bool:
    """Whether distribution accepts ``url`` on a layer (see the module docstring)."""
    parsed = _go_url(url)
    if parsed is None:
        return False
    scheme, fragment = parsed
    if scheme not in ("http", "https") or fragment:
        return False
    if allow and not any(pattern.search(url) for pattern in allow):
        return False
    return not any(pattern.search(url) for pattern in deny)


def _image_references(manifest: Manifest) -> tuple[Descriptor, ...]:
    config = () if manifest.config is None else (manifest.config,)
    return config + manifest.layers


def foreign_layer_check(
    manifest: Manifest,
    allow: Sequence[re.Pattern[str]],
    deny: Sequence[re.Pattern[str]],
) -> None:
    """Apply distribution's rules for layers with ``urls`` to an image manifest.

    A schema2 foreign layer (:data:`DOCKER_FOREIGN_LAYER`) must list URLs; the URLs
    of foreign layers and of OCI layers (:data:`OCI_LAYER_TYPES`, distributable or
    not) must be http(s), without fragment, allowed and not denied. Other manifest
    types pass. Raises :class:`~dockyard.errors.ManifestBlobUnknown` with the
    layer's digest as detail, as distribution reports it.
    """
    if manifest.media_type == DOCKER_SCHEMA2:
        checked: frozenset[str] = frozenset({DOCKER_FOREIGN_LAYER})
    elif manifest.media_type == OCI_MANIFEST:
        checked = OCI_LAYER_TYPES
    else:
        return
    for layer in _image_references(manifest):
        if layer.media_type not in checked:
            continue
        if layer.media_type == DOCKER_FOREIGN_LAYER and not layer.urls:
            raise ManifestBlobUnknown("missing URL on layer", detail=str(layer.digest))
        if not all(url_allowed(url, allow, deny) for url in layer.urls):
            raise ManifestBlobUnknown("invalid URL on layer", detail=str(layer.digest))


def _unique(items: Iterable[Descriptor]) -> tuple[Descriptor, ...]:
    seen = set()
    result = []
    for item in items:
        if item.digest not in seen:
            seen.add(item.digest)
            result.append(item)
    return tuple(result)


def referenced_blobs(manifest: Manifest) -> tuple[Descriptor, ...]:
    """The blobs that must exist in the repository before ``manifest`` is accepted.

    ``config`` and ``layers`` of image manifests, except what distribution does not
    look up: schema2 foreign layers and any descriptor with ``urls``; the ``fsLayers``
    of schema1. Lists and indexes reference no blobs. First occurrence of each digest.
    """
    if manifest.media_type in (SCHEMA1_SIGNED, SCHEMA1_UNSIGNED):
        return _unique(manifest.layers)
    if manifest.media_type not in (DOCKER_SCHEMA2, OCI_MANIFEST):
        return ()
    return _unique(
        d
        for d in _image_references(manifest)
        if not d.urls
        and not (manifest.media_type == DOCKER_SCHEMA2 and d.media_type == DOCKER_FOREIGN_LAYER)
    )


def referenced_manifests(manifest: Manifest) -> tuple[Descriptor, ...]:
    """The child manifests a list or index names (each must exist in the repository).

    A ``subject`` is not included: the OCI distribution spec accepts a manifest whose
    subject is not (yet) present.
    """
    if manifest.media_type not in (DOCKER_MANIFEST_LIST, OCI_INDEX):
        return ()
    return _unique(manifest.manifests)
