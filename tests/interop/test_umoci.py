"""umoci unpacks what skopeo pulled from the registry: every file byte-identical.

Also the other way round: an image changed with umoci and pushed back reuses the layers
the registry already has.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from tests.support.interop import BuiltImage, Layout, Skopeo, Umoci, access_log, random_repo

from .conftest import Images

pytestmark = pytest.mark.interop


def docker_ref(registry, repo: str, ref: str) -> str:  # type: ignore[no-untyped-def]
    return f"docker://127.0.0.1:{registry.port}/{repo}:{ref}"


def assert_rootfs(rootfs: Path, image: BuiltImage) -> None:
    """Every file of ``image`` is in ``rootfs`` with the same bytes; nothing else is."""
    found = {
        str(Path(dirpath, name).relative_to(rootfs))
        for dirpath, _, names in os.walk(rootfs)
        for name in names
    }
    assert found == set(image.files) | set(image.symlinks)
    for rel, content in image.files.items():
        path = rootfs / rel
        assert path.is_file() and not path.is_symlink(), rel
        assert path.read_bytes() == content, f"{rel} differs after unpack"
    for rel, target in image.symlinks.items():
        assert os.readlink(rootfs / rel) == target


def test_unpack_pulled_oci_image(
    registry, skopeo: Skopeo, umoci: Umoci, images: Images, tmp_path: Path
) -> None:
    image = images.single
    repo = random_repo()
    skopeo.copy(image.ref, docker_ref(registry, repo, "v1"))
    pulled = Layout(tmp_path / "pulled")
    skopeo.copy(docker_ref(registry, repo, "v1"), pulled.ref("v1"))

    rootfs = umoci.unpack(f"{pulled.path}:v1", tmp_path / "bundle")
    assert_rootfs(rootfs, image)
    # the third layer replaced one file and deleted another (a whiteout)
    assert (rootfs / "etc/hello.txt").read_bytes() == b"replaced by the third layer\n"
    assert not (rootfs / "etc/removed.txt").exists()
    assert (rootfs / "bin/hello").read_bytes() == b"replaced by the third layer\n"


def test_unpack_pulled_docker_schema2_image(
    registry, skopeo: Skopeo, umoci: Umoci, images: Images, tmp_path: Path
) -> None:
    image = images.single
    repo = random_repo()
    skopeo.copy(image.ref, docker_ref(registry, repo, "docker"), "--format", "v2s2")
    pulled = Layout(tmp_path / "pulled")  # skopeo converts to OCI for the layout
    skopeo.copy(docker_ref(registry, repo, "docker"), pulled.ref("docker"))

    assert_rootfs(umoci.unpack(f"{pulled.path}:docker", tmp_path / "bundle"), image)


@pytest.mark.parametrize("arch", ["arm64", "amd64"])
def test_unpack_one_platform_of_an_index(
    registry, skopeo: Skopeo, umoci: Umoci, images: Images, tmp_path: Path, arch: str
) -> None:
    repo = random_repo()
    skopeo.copy(images.index.ref, docker_ref(registry, repo, "multi"), "--all")
    pulled = Layout(tmp_path / "pulled")
    skopeo.copy(
        docker_ref(registry, repo, "multi"),
        pulled.ref(arch),
        global_args=["--override-arch", arch, "--override-os", "linux"],
    )
    rootfs = umoci.unpack(f"{pulled.path}:{arch}", tmp_path / "bundle")
    assert_rootfs(rootfs, images.index.images[arch])
    assert (rootfs / "arch.txt").read_text() == f"{arch}\n"


def test_image_changed_with_umoci_reuses_the_registry_layers(
    registry, skopeo: Skopeo, umoci: Umoci, images: Images, tmp_path: Path
) -> None:
    """Pull, add a layer with umoci, push back: only the new layer and config are sent."""
    image = images.single
    repo = random_repo()
    skopeo.copy(image.ref, docker_ref(registry, repo, "v1"))
    work = Layout(tmp_path / "work")
    skopeo.copy(docker_ref(registry, repo, "v1"), work.ref("v2"))

    bundle = tmp_path / "bundle"
    rootfs = umoci.unpack(f"{work.path}:v2", bundle)
    extra = os.urandom(10_000)
    (rootfs / "etc/added.bin").write_bytes(extra)
    umoci("repack", "--image", f"{work.path}:v2", bundle)

    log_start = len(registry.log_text())
    skopeo.copy(work.ref("v2"), docker_ref(registry, repo, "v2"))
    requests = access_log(registry.log_text()[log_start:])
    uploaded = [
        httpx.URL(r.uri).params.get("digest")
        for r in requests
        if r.method == "PUT" and "/blobs/uploads/" in r.uri
    ]
    new = [
        d
        for d in work.json_blob(work.descriptor("v2")["digest"])["layers"]
        if d["digest"] not in image.layer_digests
    ]
    assert len(new) == 1
    assert not set(uploaded) & set(image.layer_digests), "existing layers were uploaded again"
    assert new[0]["digest"] in uploaded

    again = Layout(tmp_path / "again")
    skopeo.copy(docker_ref(registry, repo, "v2"), again.ref("v2"))
    rootfs2 = umoci.unpack(f"{again.path}:v2", tmp_path / "bundle2")
    assert (rootfs2 / "etc/added.bin").read_bytes() == extra
    for rel, content in image.files.items():
        assert (rootfs2 / rel).read_bytes() == content
