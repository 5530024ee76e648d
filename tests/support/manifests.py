"""Builders for manifests whose blobs are pushed first, and a libtrust-style schema1 signer.

Like :mod:`tests.support.api`, everything here talks HTTP to a real registry process; the only
server-independent logic is how the documents are built (and signed).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from tests.support.api import digest_of, push_blob

__all__ = [
    "ALL_MANIFEST_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_SCHEMA2",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_EMPTY_JSON",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "SCHEMA1_SIGNED",
    "SCHEMA1_UNSIGNED",
    "Built",
    "SigningKey",
    "descriptor",
    "get_manifest",
    "image",
    "index",
    "link_text",
    "manifest_path",
    "put_manifest",
    "repo_dir",
    "schema1_payload",
    "send_partial",
    "sign_schema1",
    "signed_schema1",
    "verify_jws",
]

DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json"
ALL_MANIFEST_TYPES = (DOCKER_SCHEMA2, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_JSON = b"{}"

_IMAGE_CONFIG_TYPE = {DOCKER_SCHEMA2: DOCKER_CONFIG, OCI_MANIFEST: OCI_CONFIG}
_IMAGE_LAYER_TYPE = {DOCKER_SCHEMA2: DOCKER_LAYER, OCI_MANIFEST: OCI_LAYER}


# -- paths ---------------------------------------------------------------------------------


def manifest_path(repo: str, reference: str) -> str:
    return f"/v2/{repo}/manifests/{reference}"


def repo_dir(root: Path, repo: str) -> Path:
    """``<root>/docker/registry/v2/repositories/<repo>`` of a filesystem registry."""
    return root / "docker" / "registry" / "v2" / "repositories" / repo


def link_text(path: Path) -> str:
    """The content of a link file (asserted to be ``<alg>:<hex>`` with no newline)."""
    data = path.read_bytes()
    assert not data.endswith(b"\n"), (path, data)
    return data.decode("ascii")


# -- documents -----------------------------------------------------------------------------


@dataclass
class Built:
    """A manifest ready to PUT: its exact bytes, its media type and digest."""

    body: bytes
    media_type: str
    blobs: list[str] = field(default_factory=list)  # digests pushed for it (config first)

    @property
    def digest(self) -> str:
        return digest_of(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return descriptor(self.media_type, self.body, **extra)


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=3).encode()


def image(
    client: httpx.Client | None,
    repo: str,
    *,
    media_type: str = DOCKER_SCHEMA2,
    layers: int = 1,
    config: bytes | None = None,
    config_media_type: str | None = None,
    artifact_type: str | None = None,
    subject: Built | Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    extra_layers: Sequence[Mapping[str, Any]] = (),
    push: bool = True,
) -> Built:
    """A Docker schema2 or OCI image manifest whose config and layers are pushed first.

    With ``push=False`` (or no client) the blobs are described but never uploaded.
    ``extra_layers`` are appended as given (foreign layers, descriptors of absent blobs).
    """
    salt = os.urandom(8).hex()
    if config is None:
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}, "salt": salt}
        ).encode()
    layer_data = [f"layer {i} of {salt}".encode() * 3 for i in range(layers)]
    pushed: list[str] = []
    if push and client is not None:
        for data in (config, *layer_data):
            pushed.append(push_blob(client, repo, data))
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = descriptor(config_media_type or _IMAGE_CONFIG_TYPE[media_type], config)
    document["layers"] = [
        *(descriptor(_IMAGE_LAYER_TYPE[media_type], data) for data in layer_data),
        *extra_layers,
    ]
    if subject is not None:
        document["subject"] = subject.descriptor() if isinstance(subject, Built) else subject
    if annotations is not None:
        document["annotations"] = dict(annotations)
    return Built(_dumps(document), media_type, pushed)


def index(
    children: Sequence[Built],
    *,
    media_type: str = OCI_INDEX,
    artifact_type: str | None = None,
    subject: Built | None = None,
    annotations: Mapping[str, str] | None = None,
    extra: Sequence[Mapping[str, Any]] = (),
) -> Built:
    """A Docker manifest list or OCI index of ``children`` (each with a platform)."""
    platforms = [("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("s390x", None)]
    manifests = []
    for i, child in enumerate(children):
        arch, variant = platforms[i % len(platforms)]
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        manifests.append(child.descriptor(platform=platform))
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["manifests"] = [*manifests, *extra]
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations is not None:
        document["annotations"] = dict(annotations)
    return Built(_dumps(document), media_type)


# -- requests ------------------------------------------------------------------------------


def put_manifest(
    client: httpx.Client,
    repo: str,
    reference: str,
    manifest: Built | bytes,
    content_type: str | None = None,
    *,
    expect: int | None = 201,
) -> httpx.Response:
    """PUT a manifest (Content-Type: its media type unless given); check the status."""
    if isinstance(manifest, Built):
        body = manifest.body
        content_type = content_type or manifest.media_type
    else:
        body = manifest
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.put(manifest_path(repo, reference), content=body, headers=headers)
    if expect is not None:
        assert response.status_code == expect, (response.status_code, response.text)
    return response


def get_manifest(
    client: httpx.Client,
    repo: str,
    reference: str,
    accept: str | Sequence[str] | None = ALL_MANIFEST_TYPES,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET (or HEAD) a manifest with ``Accept`` listing ``accept`` (None: no Accept at all).

    httpx sends ``Accept: */*`` by default; distribution 2.8 serves no OCI type for that,
    so tests name the types they accept.
    """
    sent = httpx.Headers(headers or {})
    if accept is None:
        # httpx adds its default only when the header is absent; an empty list removes it.
        request = client.build_request(method, manifest_path(repo, reference), headers=sent)
        del request.headers["Accept"]
        return client.send(request)
    sent["Accept"] = accept if isinstance(accept, str) else ", ".join(accept)
    return client.request(method, manifest_path(repo, reference), headers=sent)


# -- schema1 and libtrust signatures ------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SigningKey:
    """An EC P-256 key that signs as libtrust's ``JSONSignature.Sign`` does (ES256)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private.public_key()

    @property
    def kid(self) -> str:
        """libtrust key ID: base32 of the first 240 bits of sha256(DER SPKI), 4-char groups."""
        der = self.public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
        return ":".join(text[i : i + 4] for i in range(0, len(text), 4))

    def jwk(self) -> dict[str, str]:
        numbers = self.public.public_numbers()
        return {
            "crv": "P-256",
            "kid": self.kid,
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def schema1_payload(repo: str, tag: str, blob_sums: Sequence[str]) -> bytes:
    """A schema1 manifest without signatures, indented with three spaces as docker did."""
    history = [
        {"v1Compatibility": json.dumps({"id": hashlib.sha256(d.encode()).hexdigest()})}
        for d in blob_sums
    ]
    document = {
        "schemaVersion": 1,
        "name": repo,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": d} for d in blob_sums],
        "history": history,
    }
    return json.dumps(document, indent=3).encode()


def _signature_block(payload: bytes, key: SigningKey) -> dict[str, Any]:
    """libtrust ``NewJSONSignature(payload).Sign(key)``: one ``signatures`` entry."""
    close = len(payload.rstrip())
    assert payload[close - 1 : close] == b"}", "payload must be a JSON object"
    format_length = len(payload[: close - 1].rstrip())
    protected = _b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": _b64url(payload[format_length:]),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            separators=(",", ":"),
        ).encode()
    )
    signed = f"{protected}.{_b64url(payload)}".encode()
    return {
        "header": {"jwk": key.jwk(), "alg": "ES256"},
        "signature": _b64url(key.sign(signed)),
        "protected": protected,
    }


def sign_schema1(payload: bytes, keys: Sequence[SigningKey]) -> bytes:
    """libtrust ``PrettySignature("signatures")`` of ``payload`` signed by each key."""
    close = len(payload.rstrip())
    format_length = len(payload[: close - 1].rstrip())
    blocks = [_signature_block(payload, key) for key in keys]
    marshalled = json.dumps(blocks, indent=3).replace("\n", "\n   ")
    return payload[:format_length] + b",\n   " + b'"signatures": ' + marshalled.encode() + b"\n}"


def signed_schema1(
    client: httpx.Client, repo: str, tag: str, *, layers: int = 2, keys: int = 1
) -> tuple[bytes, bytes, list[SigningKey]]:
    """Push ``layers`` blobs; return (payload, signed manifest, keys)."""
    salt = os.urandom(8).hex()
    sums = [push_blob(client, repo, f"schema1 layer {i} {salt}".encode()) for i in range(layers)]
    payload = schema1_payload(repo, tag, sums)
    signing_keys = [SigningKey() for _ in range(keys)]
    return payload, sign_schema1(payload, signing_keys), signing_keys


def verify_jws(signed: bytes) -> tuple[bytes, list[str]]:
    """Verify every ES256 signature of a pretty JWS; return (payload, key IDs).

    Independent of the server: each signature covers ``protected + "." + b64(payload)``
    where the payload is ``body[:formatLength] + formatTail`` of its own header.
    """
    document = json.loads(signed)
    payloads = set()
    kids = []
    for block in document["signatures"]:
        assert block["header"]["alg"] == "ES256", block
        jwk = block["header"]["jwk"]
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256", jwk
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(_b64url_decode(jwk["x"]), "big"),
            int.from_bytes(_b64url_decode(jwk["y"]), "big"),
            ec.SECP256R1(),
        ).public_key()
        header = json.loads(_b64url_decode(block["protected"]))
        payload = signed[: header["formatLength"]] + _b64url_decode(header["formatTail"])
        raw = _b64url_decode(block["signature"])
        assert len(raw) == 64, len(raw)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public.verify(  # raises InvalidSignature
            der,
            f"{block['protected']}.{_b64url(payload)}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )
        payloads.add(payload)
        kids.append(jwk["kid"])
    assert len(payloads) == 1, "signatures disagree on the payload"
    return payloads.pop(), kids


# -- a request whose body is never completed ----------------------------------------------


@dataclass
class PartialResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def send_partial(
    base_url: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout: float = 10.0,
) -> PartialResponse:
    """Send the head (with the caller's ``Content-Length``) and ``body``, which may be
    shorter, from a background thread; read the response without waiting for EOF.

    Raises ``TimeoutError`` if no complete response arrives within ``timeout`` seconds.
    """
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock = socket.create_connection((host, port), timeout=timeout)

    def write() -> None:
        with contextlib.suppress(OSError):  # the server may close once it has answered
            sock.sendall(head + body)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                raise TimeoutError("no response head")
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        raw_head, _, content = data.partition(b"\r\n\r\n")
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        parsed = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        length = int(parsed.get("content-length", "0"))
        while len(content) < length:
            if time.monotonic() > deadline:
                raise TimeoutError("incomplete response body")
            chunk = sock.recv(65536)
            if not chunk:
                break
            content += chunk
        return PartialResponse(int(status_line.split(" ")[1]), parsed, content[:length])
    finally:
        sock.close()
