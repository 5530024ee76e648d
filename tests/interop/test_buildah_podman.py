"""buildah and podman as root with the vfs storage driver: build from scratch, push to the
registry, pull into fresh storage and read the file back.

Each tool gets its own storage root under the test's tmp_path (``--root``/``--runroot``),
never the machine's /var/lib/containers. No container is run: images are built with COPY
only, and files are read through ``image mount`` / ``buildah mount`` (vfs: a directory).
When a tool is missing or cannot work here, its tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from tests.support.interop import (
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_MANIFEST,
    CommandError,
    random_repo,
    run,
    sha256_digest,
)

pytestmark = pytest.mark.interop


class ContainerTool:
    """buildah or podman with private vfs storage in ``home``."""

    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        self.name = Path(binary).name
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        # podman refuses a runroot longer than 50 characters; pytest's tmp paths are longer.
        self.runroot = Path(tempfile.mkdtemp(prefix=f"{self.name}-run-"))

    def close(self) -> None:
        shutil.rmtree(self.runroot, ignore_errors=True)

    def global_args(self) -> list[str]:
        args = [
            "--root",
            str(self.home / "root"),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
        ]
        if self.name == "podman":
            args += [
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--tmpdir",
                str(self.home / "tmp"),
            ]
        return args

    def __call__(
        self, *args: str | os.PathLike[str], check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        # Registries config of our own: no search registries, no mirrors of the host's.
        env = {"CONTAINERS_REGISTRIES_CONF": str(self._registries_conf())}
        return run([self.binary, *self.global_args(), *args], check=check, cwd=cwd, env=env)

    def _registries_conf(self) -> Path:
        path = self.home / "registries.conf"
        if not path.exists():
            path.write_text("unqualified-search-registries = []\n")
        return path


def _probe(name: str, tmp: Path, args: Sequence[str]) -> str:
    """The binary if ``name args...`` works here; else skip with the exact reason."""
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(
            f"{name} is not installed (apt-get install -y {name}; not part of "
            "scripts/install-test-deps)"
        )
    tool = ContainerTool(binary, tmp / name)
    try:
        tool(*args)
    except CommandError as exc:
        pytest.skip(f"{name} cannot run here as root with --storage-driver vfs: {exc}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{name} cannot run here: {exc!r}")
    finally:
        tool.close()
    return binary


@pytest.fixture(scope="session")
def buildah_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """buildah, proven to work: ``from scratch`` then ``rm`` on private vfs storage."""
    tmp = tmp_path_factory.mktemp("probe-buildah")
    return _probe("buildah", tmp, ["from", "--name", "probe", "scratch"])


@pytest.fixture(scope="session")
def podman_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """podman, proven to work: ``images`` on private vfs storage, cgroupfs, file events."""
    return _probe("podman", tmp_path_factory.mktemp("probe-podman"), ["images"])


@pytest.fixture
def buildah(buildah_binary: str, tmp_path: Path) -> Iterator[ContainerTool]:
    tool = ContainerTool(buildah_binary, tmp_path / "buildah")
    yield tool
    tool.close()


@pytest.fixture
def podman(podman_binary: str, tmp_path: Path) -> Iterator[ContainerTool]:
    tool = ContainerTool(podman_binary, tmp_path / "podman")
    yield tool
    tool.close()


def manifest_of(client: httpx.Client, repo: str, tag: str) -> httpx.Response:
    response = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("oci", OCI_MANIFEST), ("docker", DOCKER_MANIFEST)],
    ids=["oci", "docker"],
)
def test_buildah_from_scratch_push_then_podman_pull(
    registry,
    client: httpx.Client,
    buildah: ContainerTool,
    podman: ContainerTool,
    tmp_path: Path,
    fmt: str,
    media_type: str,
) -> None:
    content = os.urandom(20_000)
    note = b"built by buildah from scratch\n"
    (tmp_path / "payload.bin").write_bytes(content)
    (tmp_path / "note.txt").write_bytes(note)
    repo = random_repo("buildah")
    ref = f"127.0.0.1:{registry.port}/{repo}:{fmt}"

    container = buildah("from", "scratch").stdout.strip()
    buildah("copy", container, str(tmp_path / "payload.bin"), "/data/payload.bin")
    buildah("copy", container, str(tmp_path / "note.txt"), "/note.txt")
    buildah("config", "--label", "org.example.built-by=buildah", "--cmd", "/none", container)
    buildah("commit", "--format", fmt, container, f"localhost/{repo}:{fmt}")
    buildah("push", "--tls-verify=false", f"localhost/{repo}:{fmt}", f"docker://{ref}")

    served = manifest_of(client, repo, fmt)
    assert served.headers["Content-Type"] == media_type
    digest = served.headers["Docker-Content-Digest"]
    assert digest == sha256_digest(served.content)

    podman("pull", "--tls-verify=false", ref)
    pulled_digest = podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    assert pulled_digest == digest
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", ref).stdout)
    assert labels["org.example.built-by"] == "buildah"
    mountpoint = Path(podman("image", "mount", ref).stdout.strip())
    try:
        assert (mountpoint / "data/payload.bin").read_bytes() == content
        assert (mountpoint / "note.txt").read_bytes() == note
    finally:
        podman("image", "unmount", ref, check=False)


def test_podman_build_push_then_buildah_pull(
    registry,
    client: httpx.Client,
    buildah: ContainerTool,
    podman: ContainerTool,
    tmp_path: Path,
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    content = os.urandom(30_000)
    (context / "blob.bin").write_bytes(content)
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY blob.bin /srv/blob.bin\nLABEL org.example.built-by=podman\n"
    )
    repo = random_repo("podman")
    ref = f"127.0.0.1:{registry.port}/{repo}:built"

    podman("build", "--format", "oci", "-t", f"localhost/{repo}:built", str(context))
    podman("push", "--tls-verify=false", f"localhost/{repo}:built", f"docker://{ref}")
    digest = manifest_of(client, repo, "built").headers["Docker-Content-Digest"]

    buildah("pull", "--tls-verify=false", ref)
    assert (
        buildah(
            "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", ref
        ).stdout.strip()
        == digest
    )
    container = buildah("from", ref).stdout.strip()
    mountpoint = Path(buildah("mount", container).stdout.strip())
    try:
        assert (mountpoint / "srv/blob.bin").read_bytes() == content
    finally:
        buildah("umount", container, check=False)
        buildah("rm", container, check=False)


def test_buildah_manifest_list_push_then_podman_pulls_one_platform(
    registry,
    client: httpx.Client,
    buildah: ContainerTool,
    podman: ContainerTool,
    tmp_path: Path,
) -> None:
    """``buildah manifest push --all`` of two platforms; podman pulls the arm64 one."""
    repo = random_repo("buildah-list")
    ref = f"127.0.0.1:{registry.port}/{repo}:multi"
    buildah("manifest", "create", f"localhost/{repo}:list")
    contents = {}
    for arch in ("amd64", "arm64"):
        contents[arch] = f"{arch}\n".encode() + os.urandom(1000)
        (tmp_path / f"{arch}.txt").write_bytes(contents[arch])
        container = buildah("from", "scratch").stdout.strip()
        buildah("copy", container, str(tmp_path / f"{arch}.txt"), "/arch.txt")
        buildah("config", "--arch", arch, "--os", "linux", container)
        buildah("commit", "--format", "oci", container, f"localhost/{repo}:{arch}")
        buildah("manifest", "add", f"localhost/{repo}:list", f"localhost/{repo}:{arch}")
    buildah(
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        f"localhost/{repo}:list",
        f"docker://{ref}",
    )

    served = manifest_of(client, repo, "multi")
    index = served.json()
    assert served.headers["Content-Type"] == index["mediaType"]
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    for entry in index["manifests"]:
        assert manifest_of(client, repo, entry["digest"]).content != b""

    podman("pull", "--tls-verify=false", "--arch", "arm64", ref)
    arm = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    assert podman("image", "inspect", "--format", "{{.Architecture}}", ref).stdout.strip() == (
        "arm64"
    )
    mountpoint = Path(podman("image", "mount", ref).stdout.strip())
    try:
        assert (mountpoint / "arch.txt").read_bytes() == contents["arm64"]
    finally:
        podman("image", "unmount", ref, check=False)
    digests = podman("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout
    assert arm["digest"] in digests, digests
