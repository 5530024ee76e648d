"""Helpers for the interoperability tests: real command-line clients, OCI layouts, logs.

Nothing here imports dockyard: every check goes through a real client (skopeo, umoci,
buildah, podman, the ``oras`` and ``python-dxf`` packages) or plain HTTP, against a real
server process on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Which server the ``registry`` fixture runs: ``dockyard`` (default) or ``distribution``.
TARGET = os.environ.get("DOCKYARD_TEST_TARGET", "dockyard")

COMMAND_TIMEOUT = 120.0
DISTRIBUTION_BINARY = "/usr/bin/docker-registry"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
REF_NAME = "org.opencontainers.image.ref.name"


def only_on_dockyard(reason: str) -> pytest.MarkDecorator:
    """Skip where ``docker-registry`` 2.8 cannot do what the test checks (``reason`` says)."""
    return pytest.mark.skipif(TARGET == "distribution", reason=f"distribution 2.8: {reason}")


def random_repo(prefix: str = "interop") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# -- running commands --------------------------------------------------------------------


class CommandError(AssertionError):
    """A command failed; the message carries its command line, status and output."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"command failed with status {result.returncode}: {' '.join(map(str, result.args))}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandError(result)
    return result


def require_binary(name: str, package: str | None = None) -> str:
    """The path of ``name``; fail (not skip) when missing: CI installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install -y {package or name} "
            "(scripts/install-test-deps installs it in CI)"
        )
    return path


# -- skopeo ------------------------------------------------------------------------------


class Skopeo:
    """skopeo against plain-HTTP registries on loopback, with no signature policy."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def __call__(
        self, *args: str | os.PathLike[str], check: bool = True, debug: bool = False
    ) -> subprocess.CompletedProcess[str]:
        cmd: list[str | os.PathLike[str]] = [self.binary, "--insecure-policy"]
        if debug:
            cmd.append("--debug")
        return run([*cmd, *args], check=check)

    def copy(
        self,
        src: str,
        dest: str,
        *extra: str,
        debug: bool = False,
        check: bool = True,
        global_args: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        cmd: list[str | os.PathLike[str]] = [self.binary, "--insecure-policy", *global_args]
        if debug:
            cmd.append("--debug")
        cmd += ["copy", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dest]
        return run(cmd, check=check)

    def inspect(
        self, ref: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self("inspect", "--tls-verify=false", *extra, ref, check=check)

    def inspect_json(self, ref: str, *extra: str) -> Any:
        return json.loads(self.inspect(ref, *extra).stdout)

    def raw_manifest(self, ref: str) -> bytes:
        """The manifest exactly as served (``--raw``), as bytes."""
        proc = subprocess.run(
            [self.binary, "--insecure-policy", "inspect", "--tls-verify=false", "--raw", ref],
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"skopeo inspect --raw {ref}: {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout

    def list_tags(self, ref: str) -> list[str]:
        out = self("list-tags", "--tls-verify=false", ref).stdout
        return list(json.loads(out)["Tags"])

    def delete(self, ref: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("delete", "--tls-verify=false", ref, check=check)


# -- OCI image layouts -------------------------------------------------------------------


@dataclass
class Layout:
    """An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``)."""

    path: Path

    def blob_path(self, digest: str) -> Path:
        alg, hexpart = digest.split(":", 1)
        return self.path / "blobs" / alg / hexpart

    def blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def json_blob(self, digest: str) -> Any:
        return json.loads(self.blob(digest))

    def write_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return digest

    def index(self) -> dict[str, Any]:
        return json.loads((self.path / "index.json").read_text())

    def descriptor(self, tag: str) -> dict[str, Any]:
        """The descriptor that ``index.json`` names ``tag``."""
        found = [
            d
            for d in self.index()["manifests"]
            if (d.get("annotations") or {}).get(REF_NAME) == tag
        ]
        assert len(found) == 1, f"{self.path}: {len(found)} entries named {tag!r}"
        return found[0]

    def add_ref(self, tag: str, descriptor: Mapping[str, Any]) -> None:
        """Name ``descriptor`` ``tag`` in ``index.json`` (replacing an older entry)."""
        index = self.index()
        index["manifests"] = [
            d for d in index["manifests"] if (d.get("annotations") or {}).get(REF_NAME) != tag
        ]
        entry = dict(descriptor)
        entry["annotations"] = {**(descriptor.get("annotations") or {}), REF_NAME: tag}
        index["manifests"].append(entry)
        (self.path / "index.json").write_text(json.dumps(index))

    def ref(self, tag: str) -> str:
        return f"oci:{self.path}:{tag}"


@dataclass
class BuiltImage:
    """A single-platform image in a :class:`Layout`, with the files written into it."""

    layout: Layout
    tag: str
    files: dict[str, bytes]  # path inside rootfs -> content
    manifest_digest: str
    manifest_bytes: bytes
    config_digest: str
    layer_digests: list[str]
    architecture: str
    symlinks: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.layout.ref(self.tag)

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes)

    @property
    def blob_digests(self) -> set[str]:
        return {self.config_digest, *self.layer_digests}


@dataclass
class BuiltIndex:
    """A multi-platform OCI image index in a :class:`Layout`."""

    layout: Layout
    tag: str
    digest: str
    raw: bytes
    images: dict[str, BuiltImage]  # architecture -> image

    @property
    def ref(self) -> str:
        return self.layout.ref(self.tag)


class Umoci:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def __call__(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        return run([self.binary, *args])

    def init(self, layout: Path) -> Layout:
        self("init", "--layout", layout)
        return Layout(layout)

    def unpack(self, image: str, bundle: Path) -> Path:
        """``umoci unpack --rootless``; returns the bundle's ``rootfs``."""
        self("unpack", "--rootless", "--image", image, bundle)
        return bundle / "rootfs"

    def build(
        self,
        layout: Layout,
        tag: str,
        layers: Sequence[Mapping[str, bytes | None]],
        workdir: Path,
        *,
        architecture: str | None = None,
        symlinks: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> BuiltImage:
        """A new image ``tag`` with one layer per mapping of ``{path: content}``.

        A content of ``None`` deletes the path (umoci writes a whiteout). Each layer is
        made by unpacking the image so far into a fresh bundle, writing the files and
        repacking, so every mapping becomes exactly one layer.
        """
        image = f"{layout.path}:{tag}"
        self("new", "--image", image)
        config_args: list[str] = []
        if architecture:
            config_args += ["--architecture", architecture]
        for key, value in (labels or {}).items():
            config_args += ["--config.label", f"{key}={value}"]
        config_args += ["--config.cmd", "/bin/true"]
        self("config", "--image", image, *config_args)
        files: dict[str, bytes] = {}
        for number, layer in enumerate(layers):
            bundle = workdir / f"bundle-{tag}-{number}"
            rootfs = self.unpack(image, bundle)
            for rel, content in layer.items():
                target = rootfs / rel
                if content is None:
                    target.unlink()
                    files.pop(rel, None)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                files[rel] = content
            if number == len(layers) - 1:
                for rel, dest in (symlinks or {}).items():
                    link = rootfs / rel
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(dest)
            self("repack", "--image", image, bundle)
            shutil.rmtree(bundle)
        desc = layout.descriptor(tag)
        manifest_bytes = layout.blob(desc["digest"])
        manifest = json.loads(manifest_bytes)
        config = layout.json_blob(manifest["config"]["digest"])
        return BuiltImage(
            layout=layout,
            tag=tag,
            files=files,
            manifest_digest=desc["digest"],
            manifest_bytes=manifest_bytes,
            config_digest=manifest["config"]["digest"],
            layer_digests=[layer["digest"] for layer in manifest["layers"]],
            architecture=config["architecture"],
            symlinks=dict(symlinks or {}),
        )


def make_index(layout: Layout, tag: str, images: Iterable[BuiltImage]) -> BuiltIndex:
    """Write an OCI image index of ``images`` (with their platforms) into ``layout``."""
    images = list(images)
    manifests = []
    for image in images:
        config = layout.json_blob(image.config_digest)
        manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest_digest,
                "size": len(image.manifest_bytes),
                "platform": {"architecture": config["architecture"], "os": config["os"]},
            }
        )
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, indent=2
    ).encode()
    digest = layout.write_blob(raw)
    layout.add_ref(tag, {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)})
    return BuiltIndex(layout, tag, digest, raw, {image.architecture: image for image in images})


# -- dir: transport (skopeo copy ... dir:PATH keeps the manifest bytes as served) -----------


@dataclass
class DirImage:
    path: Path

    @property
    def manifest_bytes(self) -> bytes:
        return (self.path / "manifest.json").read_bytes()

    @property
    def manifest(self) -> Any:
        return json.loads(self.manifest_bytes)

    def instance_bytes(self, digest: str) -> bytes:
        """An instance manifest of a list copied with ``--all`` (``<hex>.manifest.json``)."""
        return (self.path / f"{digest.split(':', 1)[1]}.manifest.json").read_bytes()

    def blob(self, digest: str) -> bytes:
        return (self.path / digest.split(":", 1)[1]).read_bytes()

    def blob_digests(self) -> set[str]:
        return {
            "sha256:" + p.name for p in self.path.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)
        }


# -- server logs -------------------------------------------------------------------------

# Both servers write a Common Log Format line per request: "METHOD URI HTTP/1.1" STATUS
_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3})')


@dataclass(frozen=True)
class Access:
    method: str
    uri: str
    status: int


def access_log(text: str) -> list[Access]:
    return [Access(m[1], m[2], int(m[3])) for m in _ACCESS.finditer(text)]


# -- storage trees -----------------------------------------------------------------------


def storage_files(root: Path) -> dict[str, Path]:
    """Relative paths of every file under ``<root>/docker/registry/v2``, minus uploads."""
    base = root / "docker" / "registry" / "v2"
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != "_uploads"]
        for name in filenames:
            full = Path(dirpath) / name
            files[str(full.relative_to(base))] = full
    return files
