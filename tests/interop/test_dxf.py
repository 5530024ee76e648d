"""python-dxf, a second independent client: blobs (monolithic PUT and a chunked
transfer-encoded stream), mounts, manifests, aliases (tags), pagination and deletes.

dxf checks every digest it receives: blob bytes against the digest asked for, manifest
bytes against ``Docker-Content-Digest``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from dxf import DXF, DXFBase
from tests.support.interop import (
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
    random_repo,
    sha256_digest,
)

pytestmark = pytest.mark.interop


@pytest.fixture
def dxf_factory(registry) -> Iterator:  # type: ignore[no-untyped-def]
    made: list[DXFBase] = []

    def factory(repo: str) -> DXF:
        d = DXF(f"127.0.0.1:{registry.port}", repo, insecure=True, timeout=60)
        made.append(d.__enter__())  # a requests.Session of its own, closed at teardown
        return d

    yield factory
    for d in made:
        d.__exit__(None, None, None)


def pull(d: DXF, digest: str) -> bytes:
    return b"".join(d.pull_blob(digest))


def test_blob_push_and_pull(dxf_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = dxf_factory(random_repo("dxf"))
    data = os.urandom(200_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    digest = d.push_blob(str(path))
    assert digest == sha256_digest(data)
    assert d.blob_size(digest) == len(data)
    assert pull(d, digest) == data
    chunks, size = d.pull_blob(digest, size=True, chunk_size=4096)
    assert size == len(data) and b"".join(chunks) == data
    assert d.push_blob(str(path)) == digest  # HEAD finds it: not uploaded again


def test_blob_pushed_as_a_chunked_stream(dxf_factory) -> None:  # type: ignore[no-untyped-def]
    """``data=`` makes requests send the PUT body with Transfer-Encoding: chunked."""
    d = dxf_factory(random_repo("dxf"))
    parts = [os.urandom(n) for n in (1, 65536, 100_000, 7, 0, 4096)]
    whole = b"".join(parts)
    digest = d.push_blob(data=iter(parts), digest=sha256_digest(whole))
    assert digest == sha256_digest(whole)
    assert d.blob_size(digest) == len(whole)
    assert pull(d, digest) == whole


def test_blob_with_a_wrong_digest_is_refused(dxf_factory) -> None:  # type: ignore[no-untyped-def]
    d = dxf_factory(random_repo("dxf"))
    with pytest.raises(requests.HTTPError) as caught:
        d.push_blob(data=iter([b"actual bytes"]), digest=sha256_digest(b"other bytes"))
    assert caught.value.response.status_code == 400
    assert caught.value.response.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_mount_blob_from_another_repository(dxf_factory) -> None:  # type: ignore[no-untyped-def]
    source, target = random_repo("dxf-src"), random_repo("dxf-dst")
    data = os.urandom(5000)
    digest = dxf_factory(source).push_blob(data=iter([data]), digest=sha256_digest(data))
    d = dxf_factory(target)
    assert d.mount_blob(source, digest) == digest
    assert pull(d, digest) == data


def test_alias_is_a_schema2_manifest(dxf_factory) -> None:  # type: ignore[no-untyped-def]
    """set_alias PUTs a Docker schema2 manifest; get_alias and get_digest read it back."""
    d = dxf_factory(random_repo("dxf"))
    blobs = [os.urandom(1000 + n) for n in range(3)]
    digests = [d.push_blob(data=iter([b]), digest=sha256_digest(b)) for b in blobs]

    manifest_json = d.set_alias("three", *digests)
    assert json.loads(manifest_json)["mediaType"] == DOCKER_MANIFEST
    assert d.get_alias("three") == digests
    assert d.get_alias("three", sizes=True) == [
        (dg, len(b)) for dg, b in zip(digests, blobs, strict=True)
    ]
    assert d.get_digest("three") == digests[0]
    served, response = d.get_manifest_and_response("three")
    assert served == manifest_json
    assert response.headers["Docker-Content-Digest"] == sha256_digest(manifest_json.encode())
    assert response.headers["Content-Type"] == DOCKER_MANIFEST


def test_oci_manifest_set_and_get(dxf_factory) -> None:  # type: ignore[no-untyped-def]
    d = dxf_factory(random_repo("dxf"))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = os.urandom(3000)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256_digest(layer),
                "size": len(layer),
            }
        ],
        "annotations": {"org.example.client": "python-dxf"},
    }
    for blob in (config, layer):
        d.push_blob(data=iter([blob]), digest=sha256_digest(blob))
    manifest_json = json.dumps(manifest, indent=3)
    d.set_manifest("oci", manifest_json)

    served, response = d.get_manifest_and_response("oci")
    assert served == manifest_json
    assert response.headers["Content-Type"] == OCI_MANIFEST
    assert d.get_manifest("oci") == manifest_json
    assert d.get_alias("oci") == [sha256_digest(layer)]
    digest = sha256_digest(manifest_json.encode())
    by_digest, _ = d.get_manifest_and_response(digest)
    assert by_digest == manifest_json


def test_head_manifest(dxf_factory) -> None:  # type: ignore[no-untyped-def]
    """dxf's head_manifest_and_response (what containerd and oras-go resolvers do)."""
    d = dxf_factory(random_repo("dxf"))
    blob = os.urandom(100)
    digest = d.push_blob(data=iter([blob]), digest=sha256_digest(blob))
    manifest_json = d.set_alias("t", digest)
    want = sha256_digest(manifest_json.encode())
    got, response = d.head_manifest_and_response("t")
    assert got == want
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(manifest_json.encode()))
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    got_by_digest, _ = d.head_manifest_and_response(want)
    assert got_by_digest == want


def test_list_aliases_and_repositories_paginated(
    registry,
    dxf_factory,  # type: ignore[no-untyped-def]
) -> None:
    """dxf follows ``Link: <...>; rel="next"`` for tags (n=7) and the catalog (n=50)."""
    prefix = random_repo("dxf-list")
    d = dxf_factory(prefix + "/a")
    blob = os.urandom(64)
    digest = d.push_blob(data=iter([blob]), digest=sha256_digest(blob))
    manifest_json = d.make_manifest(digest)
    aliases = sorted(f"tag-{n:02d}" for n in range(25))
    for alias in aliases:
        d.set_manifest(alias, manifest_json)
    listed = d.list_aliases(batch_size=7)
    assert sorted(listed) == aliases
    assert len(listed) == len(set(listed))
    if registry.kind == "dockyard":
        assert listed == aliases

    other = dxf_factory(prefix + "/b")
    other.push_blob(data=iter([blob]), digest=digest)
    other.set_manifest("x", manifest_json)
    with DXFBase(f"127.0.0.1:{registry.port}", insecure=True) as base:
        repos = base.list_repos(batch_size=50)
    assert len(repos) == len(set(repos))
    # distribution's order: by path component ('/' sorts before any other character)
    assert repos == sorted(repos, key=lambda name: name.replace("/", "\0"))
    assert {prefix + "/a", prefix + "/b"} <= set(repos)


def test_delete_alias_and_blob(
    registry,
    client: httpx.Client,
    dxf_factory,  # type: ignore[no-untyped-def]
) -> None:
    d = dxf_factory(random_repo("dxf"))
    blob = os.urandom(128)
    digest = d.push_blob(data=iter([blob]), digest=sha256_digest(blob))
    d.set_alias("gone", digest)
    d.set_alias("other-tag-same-manifest", digest)

    assert d.del_alias("gone") == [digest]  # DELETE by the manifest's digest
    for alias in ("gone", "other-tag-same-manifest"):
        with pytest.raises(requests.HTTPError) as caught:
            d.get_alias(alias)
        assert caught.value.response.status_code == 404
    assert d.list_aliases() == []

    d.del_blob(digest)
    with pytest.raises(requests.HTTPError) as caught:
        d.blob_size(digest)
    assert caught.value.response.status_code == 404
