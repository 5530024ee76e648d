"""skopeo (containers/image) against the registry: copies in and out, multi-arch,
cross-repository mounts, inspect, list-tags and delete.

Images come from the session's OCI layout built with umoci (see conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.support.interop import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltImage,
    DirImage,
    Layout,
    Skopeo,
    access_log,
    file_digest,
    random_repo,
    sha256_digest,
)

from .conftest import Images

pytestmark = pytest.mark.interop


def docker_ref(registry, repo: str, ref: str) -> str:  # type: ignore[no-untyped-def]
    sep = "@" if ref.startswith("sha256:") else ":"
    return f"docker://127.0.0.1:{registry.port}/{repo}{sep}{ref}"


def get_manifest(client: httpx.Client, repo: str, ref: str) -> httpx.Response:
    response = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT})
    assert response.status_code == 200, f"GET {repo}:{ref} -> {response.status_code}"
    return response


def assert_blobs_identical(src: Layout, dest: Layout, digests: set[str]) -> None:
    for digest in digests:
        assert dest.blob_path(digest).exists(), f"{digest} missing from {dest.path}"
        assert file_digest(dest.blob_path(digest)) == digest
        assert dest.blob(digest) == src.blob(digest)


# -- OCI and Docker schema2 images, in and out -------------------------------------------


def test_oci_image_in_and_out_keeps_every_digest(
    registry, client: httpx.Client, skopeo: Skopeo, images: Images, tmp_path: Path
) -> None:
    """An OCI image copied in and back out is the same image, byte for byte."""
    image = images.single
    repo = random_repo()
    skopeo.copy(image.ref, docker_ref(registry, repo, "v1"))

    raw = skopeo.raw_manifest(docker_ref(registry, repo, "v1"))
    assert raw == image.manifest_bytes
    response = get_manifest(client, repo, "v1")
    assert response.headers["Content-Type"] == OCI_MANIFEST
    assert response.headers["Docker-Content-Digest"] == image.manifest_digest
    assert response.content == image.manifest_bytes

    out = Layout(tmp_path / "out")
    skopeo.copy(docker_ref(registry, repo, "v1"), out.ref("pulled"))
    desc = out.descriptor("pulled")
    assert desc["mediaType"] == OCI_MANIFEST
    assert desc["digest"] == image.manifest_digest
    assert out.blob(image.manifest_digest) == image.manifest_bytes
    assert_blobs_identical(image.layout, out, image.blob_digests)
    assert len(image.layer_digests) == 3

    # ... and by digest too
    out_by_digest = Layout(tmp_path / "by-digest")
    skopeo.copy(docker_ref(registry, repo, image.manifest_digest), out_by_digest.ref("d"))
    assert out_by_digest.descriptor("d")["digest"] == image.manifest_digest


def test_docker_schema2_image_in_and_out(
    registry, client: httpx.Client, skopeo: Skopeo, images: Images, tmp_path: Path
) -> None:
    """``--format v2s2`` pushes a Docker schema2 manifest, served and pulled as sent."""
    image = images.single
    repo = random_repo()
    skopeo.copy(image.ref, docker_ref(registry, repo, "docker"), "--format", "v2s2")

    raw = skopeo.raw_manifest(docker_ref(registry, repo, "docker"))
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    # Same blobs as the OCI image: only the manifest was rewritten.
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    response = get_manifest(client, repo, "docker")
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == sha256_digest(raw)

    # dir: keeps the manifest exactly as served and every blob by digest.
    pulled = DirImage(tmp_path / "dir")
    skopeo.copy(docker_ref(registry, repo, "docker"), f"dir:{pulled.path}")
    assert pulled.manifest_bytes == raw
    assert pulled.blob_digests() == image.blob_digests
    for digest in pulled.blob_digests():
        assert sha256_digest(pulled.blob(digest)) == digest

    # Pushed again from dir: into another repository: the same digest.
    repo2 = random_repo()
    skopeo.copy(f"dir:{pulled.path}", docker_ref(registry, repo2, "again"))
    assert get_manifest(client, repo2, "again").headers["Docker-Content-Digest"] == (
        sha256_digest(raw)
    )


def test_zstd_layers_in_and_out(
    registry, client: httpx.Client, skopeo: Skopeo, fresh_image: BuiltImage, tmp_path: Path
) -> None:
    """Layers recompressed with zstd on the way in are stored and served as sent.

    (A fresh image: skopeo would reuse gzip layers it knows the registry already has.)"""
    repo = random_repo()
    skopeo.copy(
        fresh_image.ref, docker_ref(registry, repo, "zstd"), "--dest-compress-format", "zstd"
    )
    raw = skopeo.raw_manifest(docker_ref(registry, repo, "zstd"))
    manifest = json.loads(raw)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    assert not {layer["digest"] for layer in manifest["layers"]} & set(fresh_image.layer_digests)
    assert get_manifest(client, repo, "zstd").headers["Docker-Content-Digest"] == (
        sha256_digest(raw)
    )
    pulled = DirImage(tmp_path / "dir")
    skopeo.copy(docker_ref(registry, repo, "zstd"), f"dir:{pulled.path}")
    assert pulled.manifest_bytes == raw
    for layer in manifest["layers"]:
        data = pulled.blob(layer["digest"])
        assert sha256_digest(data) == layer["digest"]
        assert len(data) == layer["size"]
        assert data[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic


# -- multi-arch ------------------------------------------------------------------------


def test_multi_arch_all_in_and_out_keeps_the_index_digest(
    registry, client: httpx.Client, skopeo: Skopeo, images: Images, tmp_path: Path
) -> None:
    index = images.index
    repo = random_repo()
    skopeo.copy(index.ref, docker_ref(registry, repo, "multi"), "--all")

    assert skopeo.raw_manifest(docker_ref(registry, repo, "multi")) == index.raw
    response = get_manifest(client, repo, "multi")
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == index.digest
    for image in index.images.values():
        got = get_manifest(client, repo, image.manifest_digest)
        assert got.content == image.manifest_bytes

    out = Layout(tmp_path / "out")
    skopeo.copy(docker_ref(registry, repo, "multi"), out.ref("multi"), "--all")
    desc = out.descriptor("multi")
    assert (desc["mediaType"], desc["digest"]) == (OCI_INDEX, index.digest)
    assert out.blob(index.digest) == index.raw
    for image in index.images.values():
        assert out.blob(image.manifest_digest) == image.manifest_bytes
        assert_blobs_identical(image.layout, out, image.blob_digests)


@pytest.mark.parametrize("arch", ["arm64", "amd64"])
def test_override_arch_pulls_one_platform(
    registry, skopeo: Skopeo, images: Images, tmp_path: Path, arch: str
) -> None:
    index = images.index
    repo = random_repo()
    skopeo.copy(index.ref, docker_ref(registry, repo, "multi"), "--all")

    out = Layout(tmp_path / "out")
    skopeo.copy(
        docker_ref(registry, repo, "multi"),
        out.ref("one"),
        global_args=["--override-arch", arch, "--override-os", "linux"],
    )
    wanted = index.images[arch]
    desc = out.descriptor("one")
    assert (desc["mediaType"], desc["digest"]) == (OCI_MANIFEST, wanted.manifest_digest)
    assert out.json_blob(wanted.config_digest)["architecture"] == arch
    assert_blobs_identical(wanted.layout, out, wanted.blob_digests)
    other = next(img for a, img in index.images.items() if a != arch)
    assert not out.blob_path(other.manifest_digest).exists()


def test_docker_manifest_list_in_and_out(
    registry, client: httpx.Client, skopeo: Skopeo, images: Images, tmp_path: Path
) -> None:
    """``--all --format v2s2`` turns the index into a Docker manifest list of schema2 images."""
    index = images.index
    repo = random_repo()
    skopeo.copy(index.ref, docker_ref(registry, repo, "list"), "--all", "--format", "v2s2")

    raw = skopeo.raw_manifest(docker_ref(registry, repo, "list"))
    manifest_list = json.loads(raw)
    assert manifest_list["mediaType"] == DOCKER_LIST
    assert {m["platform"]["architecture"] for m in manifest_list["manifests"]} == {"amd64", "arm64"}
    response = get_manifest(client, repo, "list")
    assert response.headers["Content-Type"] == DOCKER_LIST
    assert response.headers["Docker-Content-Digest"] == sha256_digest(raw)

    pulled = DirImage(tmp_path / "dir")
    skopeo.copy(docker_ref(registry, repo, "list"), f"dir:{pulled.path}", "--all")
    assert pulled.manifest_bytes == raw
    for entry in manifest_list["manifests"]:
        instance = pulled.instance_bytes(entry["digest"])
        assert sha256_digest(instance) == entry["digest"]
        assert json.loads(instance)["mediaType"] == DOCKER_MANIFEST

    arm = Layout(tmp_path / "arm")
    skopeo.copy(
        docker_ref(registry, repo, "list"),
        arm.ref("arm"),
        global_args=["--override-arch", "arm64", "--override-os", "linux"],
    )
    config = arm.json_blob(
        json.loads(arm.blob(arm.descriptor("arm")["digest"]))["config"]["digest"]
    )
    assert config["architecture"] == "arm64"


# -- cross-repository mount --------------------------------------------------------------


def test_copy_between_repositories_mounts_the_layers(
    registry, skopeo: Skopeo, fresh_image: BuiltImage
) -> None:
    """A copy to another repository of the same registry mounts every layer from the source
    (POST ?mount=&from= -> 201) and uploads no layer bytes.

    skopeo never tries to reuse a config blob: it always uploads the config again (it does
    so against docker-registry too), so only the config's upload is allowed.
    """
    image = fresh_image  # layers that no other repository holds
    source, target = random_repo("mount-src"), random_repo("mount-dst")
    skopeo.copy(image.ref, docker_ref(registry, source, "v1"))

    log_start = len(registry.log_text())
    result = skopeo.copy(
        docker_ref(registry, source, "v1"), docker_ref(registry, target, "v1"), debug=True
    )
    requests = access_log(registry.log_text()[log_start:])
    to_target = [r for r in requests if r.uri.startswith(f"/v2/{target}/")]

    mounts = [r for r in to_target if r.method == "POST" and "mount=" in r.uri]
    assert mounts, f"skopeo tried no mount:\n{result.stderr[-3000:]}"
    for r in mounts:
        params = httpx.URL(r.uri).params
        assert (r.status, params["from"]) == (201, source), r
    assert {httpx.URL(r.uri).params["mount"] for r in mounts} == set(image.layer_digests)
    assert result.stderr.count("... mount OK") == len(image.layer_digests)
    for digest in image.layer_digests:
        assert f"Skipping blob {digest} (already present)" in result.stderr

    finished = [
        httpx.URL(r.uri).params.get("digest")
        for r in to_target
        if r.method == "PUT" and "/blobs/uploads/" in r.uri
    ]
    assert finished == [image.config_digest], "only the config may be uploaded"
    assert skopeo.raw_manifest(docker_ref(registry, target, "v1")) == image.manifest_bytes


# -- inspect, list-tags, delete ----------------------------------------------------------


def test_inspect(registry, skopeo: Skopeo, images: Images) -> None:
    image = images.single
    repo = random_repo()
    for tag in ("v1", "latest"):
        skopeo.copy(image.ref, docker_ref(registry, repo, tag))

    info = skopeo.inspect_json(docker_ref(registry, repo, "v1"))
    assert info["Name"] == f"127.0.0.1:{registry.port}/{repo}"
    assert info["Digest"] == image.manifest_digest
    assert sorted(info["RepoTags"]) == ["latest", "v1"]
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
    assert info["Layers"] == image.layer_digests
    assert info["Labels"] == {"org.example.test": "dockyard-interop"}

    raw = skopeo.raw_manifest(docker_ref(registry, repo, "v1"))
    assert sha256_digest(raw) == info["Digest"]
    config = skopeo(
        "inspect", "--tls-verify=false", "--config", "--raw", docker_ref(registry, repo, "v1")
    ).stdout.encode()
    assert sha256_digest(config) == image.config_digest

    by_digest = skopeo.inspect_json(docker_ref(registry, repo, image.manifest_digest))
    assert by_digest["Digest"] == image.manifest_digest

    missing = skopeo.inspect(docker_ref(registry, repo, "no-such-tag"), check=False)
    assert missing.returncode != 0
    assert "manifest unknown" in missing.stderr.lower()


def test_inspect_multi_arch(registry, skopeo: Skopeo, images: Images) -> None:
    index = images.index
    repo = random_repo()
    skopeo.copy(index.ref, docker_ref(registry, repo, "multi"), "--all")
    raw = skopeo.raw_manifest(docker_ref(registry, repo, "multi"))
    assert sha256_digest(raw) == index.digest
    for arch, image in index.images.items():
        info = json.loads(
            skopeo(
                "--override-arch",
                arch,
                "--override-os",
                "linux",
                "inspect",
                "--tls-verify=false",
                docker_ref(registry, repo, "multi"),
            ).stdout
        )
        assert info["Architecture"] == arch
        # skopeo reports the digest of what the reference names (the index), and the
        # platform's layers and config
        assert info["Digest"] == index.digest
        assert info["Layers"] == image.layer_digests


def test_list_tags_of_many_tags(
    registry, client: httpx.Client, skopeo: Skopeo, images: Images
) -> None:
    """list-tags of 40 tags (PUT directly) returns every tag, in lexical order (dockyard)."""
    image = images.single
    repo = random_repo()
    skopeo.copy(image.ref, docker_ref(registry, repo, "v1"))
    tags = {"v1", "latest", "Upper", "a_b", "a.b", "a-b", "z" * 128}
    tags |= {f"v{n}" for n in range(2, 35)}
    for tag in sorted(tags - {"v1"}):
        response = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=image.manifest_bytes,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code == 201, (tag, response.text)
    assert len(tags) >= 40

    listed = skopeo.list_tags(f"docker://127.0.0.1:{registry.port}/{repo}")
    assert sorted(listed) == sorted(tags)
    if registry.kind == "dockyard":  # docker-registry 2.8 lists in directory order
        assert listed == sorted(tags)


def test_delete_then_inspect_fails(
    registry, client: httpx.Client, skopeo: Skopeo, images: Images
) -> None:
    image = images.single
    repo = random_repo()
    for tag in ("keep", "doomed", "alias"):
        source = images.amd64 if tag == "keep" else image
        skopeo.copy(source.ref, docker_ref(registry, repo, tag))

    skopeo.delete(docker_ref(registry, repo, "doomed"))

    for ref in ("doomed", "alias", image.manifest_digest):
        result = skopeo.inspect(docker_ref(registry, repo, ref), check=False)
        assert result.returncode != 0, f"{ref} still resolves after delete"
        assert "manifest unknown" in result.stderr.lower(), result.stderr
    assert skopeo.list_tags(f"docker://127.0.0.1:{registry.port}/{repo}") == ["keep"]
    assert skopeo.inspect_json(docker_ref(registry, repo, "keep"))["Digest"] == (
        images.amd64.manifest_digest
    )
    # The blobs stay (garbage collection removes them): the layers can be fetched.
    for digest in image.layer_digests:
        assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200

    # Deleting what is gone fails.
    again = skopeo.delete(docker_ref(registry, repo, image.manifest_digest), check=False)
    assert again.returncode != 0
