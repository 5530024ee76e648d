"""Docker image manifest v2, schema 1: signed (``+prettyjws``) and unsigned (``+json``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dockyard.digest import Digest
from dockyard.errors import ManifestUnverified, NameInvalid, TagInvalid
from dockyard.manifest._common import invalid, optional_str, required_digest, schema_version
from dockyard.manifest._gojson import JSONObject, field, loads
from dockyard.manifest._types import SCHEMA1_LAYER, SCHEMA1_SIGNED, Descriptor, Manifest
from dockyard.names import is_valid_tag

if TYPE_CHECKING:
    from dockyard.manifest._libtrust import PrettySignature

# libtrust (and the `cryptography` package under it, several MiB in every process) is
# imported by the functions that handle signed schema1 only: registries rarely see one.

__all__ = ["merge_schema1_signatures", "parse_schema1"]

# distribution/reference NameRegexp (domain optional), anchored; at most 255 characters.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_NAME_MAX = 255


def _layers(document: JSONObject) -> tuple[Descriptor, ...]:
    """Validate the schema1 fields; return ``fsLayers`` as blob descriptors.

    Checks what distribution's ``signedManifestHandler.verifyManifest`` checks (the
    name, and as many ``history`` entries as ``fsLayers``) plus the field types the
    Go structs impose. Sizes are unknown in schema1, so descriptors carry 0, as
    distribution's ``References()`` does.
    """
    schema_version(document, 1)
    name = optional_str(field(document, "name"), "name") or ""
    if len(name) > _NAME_MAX or not _NAME.fullmatch(name):
        raise NameInvalid(f"invalid repository name {name[:300]!r} in manifest", detail=name[:300])
    tag = optional_str(field(document, "tag"), "tag")
    if tag is not None and not is_valid_tag(tag):
        raise TagInvalid(f"invalid tag {tag[:300]!r} in manifest", detail=tag[:300])
    if not isinstance(field(document, "architecture"), str):
        raise invalid("architecture must be a string")

    raw_layers = field(document, "fsLayers", null_resets=True)
    raw_history = field(document, "history", null_resets=True)
    raw_layers = [] if raw_layers is None else raw_layers
    raw_history = [] if raw_history is None else raw_history
    if not isinstance(raw_layers, list):
        raise invalid("fsLayers must be an array")
    if not isinstance(raw_history, list):
        raise invalid("history must be an array")
    for index, entry in enumerate(raw_history):
        if not isinstance(entry, JSONObject):
            raise invalid(f"history[{index}] must be an object")
        optional_str(field(entry, "v1Compatibility"), f"history[{index}].v1Compatibility")
    if len(raw_history) != len(raw_layers):
        raise invalid(
            f"mismatched history and fslayer cardinality {len(raw_history)} != {len(raw_layers)}"
        )
    layers = []
    for index, entry in enumerate(raw_layers):
        where = f"fsLayers[{index}].blobSum"
        if not isinstance(entry, JSONObject):
            raise invalid(f"fsLayers[{index}] must be an object")
        digest = required_digest(field(entry, "blobSum"), where)
        layers.append(Descriptor(media_type=SCHEMA1_LAYER, digest=digest, size=0))
    return tuple(layers)


def _pretty_signature(body: bytes, document: JSONObject) -> PrettySignature:
    from dockyard.manifest._libtrust import (
        JWSFormatError,
        JWSVerificationError,
        parse_pretty_signature,
    )

    try:
        return parse_pretty_signature(body, document)
    except JWSVerificationError as exc:
        raise ManifestUnverified(str(exc), detail=str(exc)) from exc
    except JWSFormatError as exc:
        raise invalid(f"signed manifest: {exc}") from exc


def parse_schema1(body: bytes, document: JSONObject, media_type: str) -> Manifest:
    """Parse a schema1 manifest; for ``+prettyjws`` verify every signature.

    The payload of a signed manifest is ``body[:formatLength] + formatTail``; its
    digest is the manifest's digest, as in distribution.
    """
    if media_type != SCHEMA1_SIGNED:
        return Manifest(
            media_type=media_type,
            digest=Digest.of(body),
            payload=body,
            layers=_layers(document),
        )
    from dockyard.manifest._libtrust import JWSVerificationError

    jws = _pretty_signature(body, document)
    try:
        payload_document = loads(jws.payload)
    except (ValueError, RecursionError) as exc:
        raise invalid(f"signed payload is not valid JSON: {exc}") from exc
    if not isinstance(payload_document, JSONObject):
        raise invalid("signed payload must be a JSON object")
    layers = _layers(payload_document)
    try:
        jws.verify()
    except JWSVerificationError as exc:
        raise ManifestUnverified(str(exc), detail=str(exc)) from exc
    return Manifest(
        media_type=SCHEMA1_SIGNED,
        digest=Digest.of(jws.payload),
        payload=jws.payload,
        layers=layers,
        signatures=jws.stored_signatures(),
    )


def merge_schema1_signatures(payload: bytes, signatures: Sequence[bytes]) -> bytes:
    """Rebuild the signed manifest to serve from a stored payload and signatures.

    Byte for byte what libtrust's ``NewJSONSignature(payload, signatures...)
    .PrettySignature("signatures")`` returns (what distribution served): the payload
    up to its last member, then ``"signatures"`` with the signatures sorted by key ID
    and laid out with the payload's own indentation, then ``}``. Signatures are not
    verified here. Raises ``ValueError`` if the payload is not a JSON object, a
    signature cannot be parsed, or there are none.
    """
    from dockyard.manifest._libtrust import merge_signatures

    return merge_signatures(payload, signatures)
