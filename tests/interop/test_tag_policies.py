"""Tag policies through skopeo: an immutable tag refuses a different image and a
delete, takes the same image again, and leaves other tags alone."""

from __future__ import annotations

import httpx
import pytest
from tests.support.interop import MANIFEST_ACCEPT, Skopeo, only_on_dockyard, random_repo

from .conftest import Images, ServerFactory

pytestmark = [pytest.mark.interop, only_on_dockyard("no immutable tags (a dockyard extension)")]


def ref(server, repo: str, tag: str) -> str:  # type: ignore[no-untyped-def]
    return f"docker://127.0.0.1:{server.port}/{repo}:{tag}"


def test_skopeo_against_immutable_tags(
    server_factory: ServerFactory, skopeo: Skopeo, images: Images
) -> None:
    server = server_factory("dockyard", overrides={
        "storage": {"delete": {"enabled": True}},
        "immutabletags": [{"repositories": ["release/**"], "tags": ["^v"]}],
    })
    repo = random_repo("release")
    single, amd64 = images.single, images.amd64
    skopeo.copy(single.ref, ref(server, repo, "v1"))

    moved = skopeo.copy(amd64.ref, ref(server, repo, "v1"), check=False)
    assert moved.returncode != 0
    assert "immutabletags[0]" in moved.stderr, moved.stderr
    deleted = skopeo.delete(ref(server, repo, "v1"), check=False)
    assert deleted.returncode != 0
    assert "immutabletags[0]" in deleted.stderr, deleted.stderr

    skopeo.copy(single.ref, ref(server, repo, "v1"))  # the same image: accepted
    with httpx.Client(base_url=server.url) as client:
        response = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert response.headers["Docker-Content-Digest"] == single.manifest_digest

    skopeo.copy(single.ref, ref(server, repo, "edge"))  # not matched: moves and goes
    skopeo.copy(amd64.ref, ref(server, repo, "edge"))
    skopeo.delete(ref(server, repo, "edge"))
    assert skopeo.list_tags(f"docker://127.0.0.1:{server.port}/{repo}") == ["v1"]
