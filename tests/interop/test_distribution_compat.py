"""Storage compatibility with Debian's docker-registry (distribution 2.8), both directions.

One registry writes a filesystem root through skopeo pushes and is stopped; the other
then serves that same root unchanged and must answer with the same manifests (bytes,
media types, digests), the same blobs, tags and catalog. Finally the same images pushed
through each registry into two fresh roots must leave the same tree of files and links.

These tests always run both servers, whatever ``DOCKYARD_TEST_TARGET`` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import oras.client
import oras.oci
import pytest
from tests.support.interop import (
    DISTRIBUTION_BINARY,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    DirImage,
    Skopeo,
    random_repo,
    run,
    sha256_digest,
    storage_files,
)

from .conftest import Images, ServerFactory

pytestmark = pytest.mark.interop

LIST_TYPES = (OCI_INDEX, DOCKER_LIST)
NOTE_TYPE = "application/vnd.dockyard.test.note.v1"


@dataclass(frozen=True)
class Pushed:
    """What was pushed: ``repo:tag`` and the manifest's media type."""

    repo: str
    tag: str
    media_type: str


def push_everything(skopeo: Skopeo, port: int, images: Images, prefix: str) -> list[Pushed]:
    """A three-layer OCI image (two tags), the same image as Docker schema2, an OCI index
    of two platforms, and the same as a Docker manifest list."""

    def dest(repo: str, tag: str) -> str:
        return f"docker://127.0.0.1:{port}/{prefix}/{repo}:{tag}"

    skopeo.copy(images.single.ref, dest("oci", "v1"))
    skopeo.copy(images.single.ref, dest("oci", "latest"))
    skopeo.copy(images.single.ref, dest("docker", "v1"), "--format", "v2s2")
    skopeo.copy(images.index.ref, dest("multi", "multi"), "--all")
    skopeo.copy(images.index.ref, dest("list", "list"), "--all", "--format", "v2s2")
    return [
        Pushed(f"{prefix}/oci", "v1", OCI_MANIFEST),
        Pushed(f"{prefix}/oci", "latest", OCI_MANIFEST),
        Pushed(f"{prefix}/docker", "v1", DOCKER_MANIFEST),
        Pushed(f"{prefix}/multi", "multi", OCI_INDEX),
        Pushed(f"{prefix}/list", "list", DOCKER_LIST),
    ]


def walk_catalog(client: httpx.Client, page: int = 2) -> list[str]:
    """The whole catalog, ``page`` names at a time, following ``Link`` headers."""
    names: list[str] = []
    url: str | None = f"/v2/_catalog?n={page}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        names += response.json()["repositories"] or []
        link = response.headers.get("Link")
        url = link.split(";")[0].strip().strip("<>") if link else None
        assert len(names) < 1000, "catalog pagination does not end"
    return names


@dataclass
class Snapshot:
    """What one registry answers about the pushed images."""

    manifests: dict[tuple[str, str], tuple[str, str, bytes]]  # (repo, ref) -> type, digest, body
    tags: dict[str, list[str]]
    catalog: list[str]


def snapshot(url: str, pushed: list[Pushed]) -> Snapshot:
    manifests: dict[tuple[str, str], tuple[str, str, bytes]] = {}
    tags: dict[str, list[str]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:

        def fetch(repo: str, ref: str) -> tuple[str, str, bytes]:
            response = client.get(
                f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
            )
            assert response.status_code == 200, f"{url} {repo}:{ref} -> {response.text}"
            value = (
                response.headers["Content-Type"],
                response.headers["Docker-Content-Digest"],
                response.content,
            )
            manifests[(repo, ref)] = value
            return value

        for item in pushed:
            media_type, digest, body = fetch(item.repo, item.tag)
            assert media_type == item.media_type
            assert digest == sha256_digest(body)
            fetch(item.repo, digest)
            if media_type in LIST_TYPES:
                for entry in json.loads(body)["manifests"]:
                    fetch(item.repo, entry["digest"])
        for repo in sorted({item.repo for item in pushed}):
            response = client.get(f"/v2/{repo}/tags/list")
            assert response.status_code == 200
            assert response.json()["name"] == repo
            tags[repo] = sorted(response.json()["tags"])
        catalog = walk_catalog(client)
    return Snapshot(manifests, tags, catalog)


def pull_all(
    skopeo: Skopeo, port: int, pushed: list[Pushed], out: Path, expected: Snapshot
) -> None:
    """skopeo pulls every image into dir: and finds the manifests and blobs it expects."""
    for number, item in enumerate(pushed):
        target = DirImage(out / f"{number}")
        out.mkdir(parents=True, exist_ok=True)
        extra = ["--all"] if item.media_type in LIST_TYPES else []
        skopeo.copy(
            f"docker://127.0.0.1:{port}/{item.repo}:{item.tag}", f"dir:{target.path}", *extra
        )
        body = expected.manifests[(item.repo, item.tag)][2]
        assert target.manifest_bytes == body
        blobs = set()
        if item.media_type in LIST_TYPES:
            for entry in json.loads(body)["manifests"]:
                instance = target.instance_bytes(entry["digest"])
                assert instance == expected.manifests[(item.repo, entry["digest"])][2]
                manifest = json.loads(instance)
                blobs |= {
                    manifest["config"]["digest"],
                    *(layer["digest"] for layer in manifest["layers"]),
                }
        else:
            manifest = json.loads(body)
            blobs = {
                manifest["config"]["digest"],
                *(layer["digest"] for layer in manifest["layers"]),
            }
        assert target.blob_digests() == blobs
        for blob in blobs:
            assert sha256_digest(target.blob(blob)) == blob


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("distribution", "dockyard"), ("dockyard", "distribution")],
    ids=["distribution-root-served-by-dockyard", "dockyard-root-served-by-distribution"],
)
def test_root_written_by_one_is_served_by_the_other(
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
    writer: str,
    reader: str,
) -> None:
    root = tmp_path / "root"
    first = server_factory(writer, root=root)
    pushed = push_everything(skopeo, first.port, images, random_repo("compat"))
    before = snapshot(first.url, pushed)
    assert sorted(before.catalog) == sorted({item.repo for item in pushed})
    first.stop()

    second = server_factory(reader, root=root)
    after = snapshot(second.url, pushed)
    assert after.manifests == before.manifests
    assert after.tags == before.tags
    assert after.catalog == before.catalog
    pull_all(skopeo, second.port, pushed, tmp_path / "pulled", before)

    # The reader keeps writing into the root, and the writer reads that back.
    repo = pushed[0].repo
    skopeo.copy(
        f"docker://127.0.0.1:{second.port}/{repo}:v1",
        f"docker://127.0.0.1:{second.port}/{repo}:added-by-{reader}",
    )
    second.stop()
    third = server_factory(writer, root=root)
    with httpx.Client(base_url=third.url, timeout=60) as client:
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert sorted(tags) == sorted(["latest", "v1", f"added-by-{reader}"])
        response = client.get(
            f"/v2/{repo}/manifests/added-by-{reader}", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert response.status_code == 200
        assert response.content == before.manifests[(repo, "v1")][2]


def test_both_registries_write_the_same_tree(
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """The same pushes, a moved tag and deletes through each registry leave the same files
    under docker/registry/v2 (uploads aside), the same link contents and blob data."""
    prefix = random_repo("tree")
    roots: dict[str, Path] = {}
    for kind in ("distribution", "dockyard"):
        roots[kind] = tmp_path / kind
        server = server_factory(kind, root=roots[kind])
        push_everything(skopeo, server.port, images, prefix)
        base = f"docker://127.0.0.1:{server.port}/{prefix}"
        # a tag moved to another image: its index/ keeps both revisions
        skopeo.copy(images.amd64.ref, f"{base}/oci:latest")
        # a manifest deleted by digest (its tags go too), a layer link deleted
        skopeo.delete(f"{base}/docker:v1")
        with httpx.Client(base_url=server.url, timeout=60) as client:
            layer = images.single.layer_digests[0]
            assert (
                client.delete(
                    f"/v2/{prefix}/multi/blobs/{images.amd64.layer_digests[0]}"
                ).status_code
                == 202
            )
            assert client.head(f"/v2/{prefix}/oci/blobs/{layer}").status_code == 200
        server.stop()

    trees = {kind: storage_files(root) for kind, root in roots.items()}
    ours, theirs = set(trees["dockyard"]), set(trees["distribution"])
    assert ours == theirs, (
        f"only in dockyard's tree: {sorted(ours - theirs)}\n"
        f"only in distribution's tree: {sorted(theirs - ours)}"
    )
    links = [rel for rel in theirs if rel.endswith("/link")]
    assert any("/_manifests/tags/" in rel and "/index/" in rel for rel in links)
    assert any("/_layers/" in rel for rel in links)
    for rel in sorted(theirs):
        mine, reference = trees["dockyard"][rel], trees["distribution"][rel]
        assert mine.read_bytes() == reference.read_bytes(), f"{rel} differs"


def push_referrer(
    port: int, repo: str, subject_digest: str, subject_size: int, tmp_path: Path
) -> str:
    """An artifact (oras-py) whose ``subject`` is the given image manifest; its digest."""
    note = tmp_path / "note.txt"
    note.write_text("a note about the image\n")
    client = oras.client.OrasClient(hostname=f"127.0.0.1:{port}", insecure=True)
    response = client.push(
        f"127.0.0.1:{port}/{repo}:note",
        files=[f"{note}:{NOTE_TYPE}"],
        manifest_config=f"{note}:{NOTE_TYPE}",
        subject=oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=subject_size),
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def test_referrer_written_by_dockyard_is_served_by_distribution(
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """dockyard's referrers link set (under the subject's revision) does not disturb
    docker-registry: it serves the artifact, deletes it and garbage-collects the root;
    dockyard then serves the image and no longer lists the deleted referrer."""
    root = tmp_path / "root"
    dockyard = server_factory("dockyard", root=root)
    repo = random_repo("compat-ref")
    image = images.single
    pushed = [Pushed(repo, "v1", OCI_MANIFEST), Pushed(repo, "note", OCI_MANIFEST)]
    skopeo.copy(image.ref, f"docker://127.0.0.1:{dockyard.port}/{repo}:v1")
    note = push_referrer(
        dockyard.port, repo, image.manifest_digest, len(image.manifest_bytes), tmp_path
    )
    before = snapshot(dockyard.url, pushed)
    dockyard.stop()

    distribution = server_factory("distribution", root=root)
    after = snapshot(distribution.url, pushed)
    assert after == before
    note_manifest = json.loads(after.manifests[(repo, note)][2])
    assert note_manifest["subject"]["digest"] == image.manifest_digest
    with httpx.Client(base_url=distribution.url, timeout=60) as client:
        assert client.delete(f"/v2/{repo}/manifests/{note}").status_code == 202
    distribution.stop()
    gc = run([DISTRIBUTION_BINARY, "garbage-collect", str(distribution.config_path)])
    assert "blob eligible for deletion" in gc.stdout + gc.stderr

    dockyard = server_factory("dockyard", root=root)
    with httpx.Client(base_url=dockyard.url, timeout=60) as client:
        listing = client.get(f"/v2/{repo}/referrers/{image.manifest_digest}")
        assert listing.status_code == 200
        assert listing.json()["manifests"] == []
        note_blob = note_manifest["layers"][0]["digest"]
        assert client.head(f"/v2/{repo}/blobs/{note_blob}").status_code == 404
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert tags == ["v1"]
    pull_all(skopeo, dockyard.port, pushed[:1], tmp_path / "pulled", before)


def test_referrer_written_by_distribution_is_listed_by_dockyard(
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    distribution = server_factory("distribution", root=root)
    repo = random_repo("compat-ref")
    image = images.single
    skopeo.copy(image.ref, f"docker://127.0.0.1:{distribution.port}/{repo}:v1")
    note = push_referrer(
        distribution.port, repo, image.manifest_digest, len(image.manifest_bytes), tmp_path
    )
    distribution.stop()

    dockyard = server_factory("dockyard", root=root)
    with httpx.Client(base_url=dockyard.url, timeout=60) as client:
        response = client.get(f"/v2/{repo}/manifests/{note}", headers={"Accept": OCI_MANIFEST})
        assert response.status_code == 200
        listing = client.get(f"/v2/{repo}/referrers/{image.manifest_digest}")
        assert listing.status_code == 200
        assert [(m["digest"], m.get("artifactType")) for m in listing.json()["manifests"]] == [
            (note, NOTE_TYPE)
        ]
