"""``dockyard garbage-collect`` on the storage root of a real registry, and beside
Debian's ``docker-registry garbage-collect``.

Images are pushed over HTTP, manifests deleted and tags moved through the API, then the
registry is stopped and the command runs on its root; restarted, the registry must
serve every kept image byte for byte, and the deleted blobs must be gone from disk.
With ``DOCKYARD_TEST_TARGET=distribution`` the root is written (and served again) by
``docker-registry``, so this also shows the collection works on its data.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from tests.support.api import digest_of, push_blob, random_repo
from tests.support.manifests import (
    DOCKER_LAYER,
    DOCKER_SCHEMA2,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Built,
    descriptor,
    get_manifest,
    image,
    index,
    manifest_path,
    put_manifest,
    repo_dir,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
SRC = Path(__file__).resolve().parents[2] / "src"
_DIGEST = r"sha256:[0-9a-f]{64}"


@dataclass
class Pushed:
    """An image as pushed: where, and every byte the registry was given for it."""

    repo: str
    reference: str
    manifest: Built
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return self.manifest.digest


def push_image(
    client: httpx.Client,
    repo: str,
    reference: str | None,
    *,
    media_type: str = DOCKER_SCHEMA2,
    shared: bytes | None = None,
) -> Pushed:
    """An image of one config and one own layer (plus ``shared``, pushed here too)."""
    extra: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    if shared is not None:
        push_blob(client, repo, shared)
        layer_type = DOCKER_LAYER if media_type == DOCKER_SCHEMA2 else OCI_LAYER
        extra.append(descriptor(layer_type, shared))
        blobs[digest_of(shared)] = shared
    built = image(client, repo, media_type=media_type, layers=1, extra_layers=extra)
    for digest in built.blobs:
        blobs[digest] = fetch(client, repo, digest)
    put_manifest(client, repo, reference or built.digest, built)
    return Pushed(repo, reference or built.digest, built, blobs)


def fetch(client: httpx.Client, repo: str, digest: str) -> bytes:
    response = client.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
    assert response.status_code == 200, (digest, response.status_code)
    return response.content


def assert_pulls(client: httpx.Client, pushed: Pushed) -> None:
    """The manifest by tag (or digest) and by digest, and every blob: byte for byte."""
    for reference in {pushed.reference, pushed.digest}:
        response = get_manifest(client, pushed.repo, reference, pushed.manifest.media_type)
        assert response.status_code == 200, (pushed.repo, reference, response.text)
        assert response.content == pushed.manifest.body
    for digest, data in pushed.blobs.items():
        assert fetch(client, pushed.repo, digest) == data


def blob_dir(root: Path, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart


def blobs_on_disk(root: Path) -> set[str]:
    base = root / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{p.parent.name}" for p in base.glob("*/*/data")}


def tree(root: Path) -> dict[str, bytes]:
    base = root / "docker/registry/v2"
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def env() -> dict[str, str]:
    return {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}


def dockyard_gc(config: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "garbage-collect", str(config), *args],
        capture_output=True, text=True, timeout=300, check=False, env=env(),
    )
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    return done


def distribution_gc(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(DISTRIBUTION_BINARY).exists():
        pytest.fail(f"{DISTRIBUTION_BINARY} is missing: apt-get install -y docker-registry")
    done = subprocess.run(
        [DISTRIBUTION_BINARY, "garbage-collect", *args, str(config)],
        capture_output=True, text=True, timeout=300, check=False, env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done


def would_delete(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern.format(digest=f"({_DIGEST})"), text))


def config_for(root: Path, workdir: Path) -> Path:
    """A config.yml that both commands accept, for the storage root ``root``."""
    path = workdir / f"config-{root.name}.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": "127.0.0.1:0"},
    }))
    return path


def delete_manifest(client: httpx.Client, repo: str, digest: str) -> None:
    response = client.delete(manifest_path(repo, digest))
    assert response.status_code == 202, response.text


def digests(pushed: Iterable[Pushed]) -> set[str]:
    return {d for p in pushed for d in (p.digest, *p.blobs)}


def test_garbage_collect_then_serve_again(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    root = server.root
    app, web = random_repo("gc-app"), random_repo("gc-web")
    shared = b"a base layer both repositories use " * 50
    with client_factory(server) as client:
        kept = [
            push_image(client, app, "v1", shared=shared),
            push_image(client, web, "latest", media_type=OCI_MANIFEST, shared=shared),
        ]
        deleted = push_image(client, app, "v0", shared=shared)
        delete_manifest(client, app, deleted.digest)  # deletes its tag too
        moved = push_image(client, app, "edge", shared=shared)
        kept.append(push_image(client, app, "edge", shared=shared))  # "edge" moves on
        # A tagged index whose children were pushed by digest only.
        children = [push_image(client, web, None, media_type=OCI_MANIFEST) for _ in range(2)]
        platforms = index([c.manifest for c in children], media_type=OCI_INDEX)
        put_manifest(client, web, "multi", platforms)
        kept.extend(children)
        kept.append(Pushed(web, "multi", platforms, {}))
        orphan = b"uploaded and never referenced"
        push_blob(client, web, orphan)
    server.stop()
    before = tree(root)

    dry = dockyard_gc(server.config_path, "--dry-run")
    assert tree(root) == before
    would = would_delete(dry.stderr, r"would delete blob {digest}")
    own = digests([deleted]) - {digest_of(shared)}
    assert would == own | {digest_of(orphan)}, dry.stderr
    assert "garbage collection (dry run): 2 repositories" in dry.stdout

    done = dockyard_gc(server.config_path)
    assert f"deleted {len(would)} (" in done.stdout, done.stdout
    assert "0 errors" in done.stdout
    assert blobs_on_disk(root) == set(blobs_on_disk_before(before)) - would
    for digest in would:
        assert not blob_dir(root, digest).exists()
    # No repository keeps a link to what went.
    layers = repo_dir(root, app) / "_layers/sha256"
    for digest in own:
        assert not (layers / digest.split(":")[1]).exists()
    assert not (repo_dir(root, web) / "_layers/sha256" / digest_of(orphan)[7:]).exists()

    # Untagged: the image "edge" used to name; the index's children stay.
    untagged = dockyard_gc(server.config_path, "--delete-untagged")
    assert f"{app}: deleted manifest {moved.digest}" in untagged.stderr
    assert "deleted 1 untagged manifest" in untagged.stdout
    gone = digests([moved]) - {digest_of(shared)}
    for digest in gone:
        assert not blob_dir(root, digest).exists()
    assert blobs_on_disk(root) == digests(kept)

    server.start()
    with client_factory(server) as client:
        for image_ in kept:
            assert_pulls(client, image_)
        for image_ in (deleted, moved):
            response = get_manifest(client, app, image_.digest, image_.manifest.media_type)
            assert response.status_code == 404
            for digest in set(image_.blobs) - {digest_of(shared)}:
                assert client.head(f"/v2/{app}/blobs/{digest}").status_code == 404
        assert client.head(f"/v2/{web}/blobs/{digest_of(orphan)}").status_code == 404
        # What went can be pushed again.
        push_blob(client, web, orphan)
        assert fetch(client, web, digest_of(orphan)) == orphan


def blobs_on_disk_before(files: dict[str, bytes]) -> set[str]:
    found = set()
    for relative in files:
        parts = relative.split("/")
        if parts[:2] == ["blobs", "sha256"] and len(parts) == 5 and parts[4] == "data":
            found.add(f"sha256:{parts[3]}")
    return found


def test_dry_runs_agree_with_docker_registry(
    registry_factory: RegistryFactory, client_factory: ClientFactory, tmp_path: Path
) -> None:
    """Without lists or referrers, both commands pick the same blobs (and after a
    real run leave the same blobs); only dockyard also removes the dangling links."""
    server = registry_factory()
    first, second = random_repo("gc-one"), random_repo("gc-two")
    shared = b"shared between repositories " * 40
    with client_factory(server) as client:
        tagged = [
            push_image(client, first, "v1", shared=shared),
            push_image(client, second, "v1", media_type=OCI_MANIFEST, shared=shared),
        ]
        removed = push_image(client, first, "v2", shared=shared)
        delete_manifest(client, first, removed.digest)
        retagged = push_image(client, second, "stable", media_type=OCI_MANIFEST)
        tagged.append(push_image(client, second, "stable", media_type=OCI_MANIFEST))
        by_digest = push_image(client, first, None)
        push_blob(client, first, b"orphan in one")
        push_blob(client, second, b"orphan in two")
    server.stop()
    orphans = {digest_of(b"orphan in one"), digest_of(b"orphan in two")}

    config = server.config_path
    for flags in ((), ("--delete-untagged",)):
        theirs = would_delete(
            distribution_gc(config, "--dry-run", *flags).stdout,
            r"blob eligible for deletion: {digest}",
        )
        ours = would_delete(
            dockyard_gc(config, "--dry-run", *flags).stderr, r"would delete blob {digest}"
        )
        expected = (digests([removed]) - {digest_of(shared)}) | orphans
        if flags:
            expected |= digests([retagged, by_digest])
        assert ours == theirs == expected, (flags, ours ^ theirs)

    # The real thing, on two copies of the root: the same blobs remain.
    copies = []
    for name in ("theirs", "ours"):
        copy = tmp_path / name
        shutil.copytree(server.root, copy, symlinks=True)
        copies.append((copy, config_for(copy, tmp_path)))
    (theirs_root, theirs_config), (ours_root, ours_config) = copies
    distribution_gc(theirs_config, "--delete-untagged")
    dockyard_gc(ours_config, "--delete-untagged")
    assert blobs_on_disk(ours_root) == blobs_on_disk(theirs_root) == digests(tagged)
    # docker-registry 2.8 leaves the layer links of deleted blobs; dockyard does not.
    dangling = repo_dir(theirs_root, first) / "_layers/sha256" / digest_of(b"orphan in one")[7:]
    assert dangling.is_dir()
    assert not (repo_dir(ours_root, first) / "_layers/sha256" / dangling.name).exists()


def test_docker_registry_would_break_a_tagged_index_and_dockyard_does_not(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """2.8's --delete-untagged deletes the children of a tagged index (they are untagged
    themselves) and their layers; dockyard keeps them."""
    server = registry_factory()
    repo = random_repo("gc-index")
    with client_factory(server) as client:
        children = [push_image(client, repo, None, media_type=OCI_MANIFEST) for _ in range(2)]
        put_manifest(client, repo, "multi", index([c.manifest for c in children]))
    server.stop()
    theirs = would_delete(
        distribution_gc(server.config_path, "--dry-run", "--delete-untagged").stdout,
        r"blob eligible for deletion: {digest}",
    )
    ours = would_delete(
        dockyard_gc(server.config_path, "--dry-run", "--delete-untagged").stderr,
        r"would delete blob {digest}",
    )
    layers = {d for c in children for d in c.blobs}
    assert layers <= theirs
    assert not ours


def test_garbage_collect_on_s3(
    tmp_path_factory: pytest.TempPathFactory, client_factory: ClientFactory
) -> None:
    """The same command on object storage (moto's S3 server), beside docker-registry's."""
    from tests.support.backends import SAFE_AWS_ENV, S3RegistryProcess, s3_params, shared_moto

    moto = shared_moto(tmp_path_factory.mktemp("moto"))
    bucket = moto.create_bucket("gc")
    server = S3RegistryProcess(
        tmp_path_factory.mktemp("gc-s3"), s3=s3_params(moto.url, bucket),
        overrides={"storage": {"redirect": {"disable": True}}},  # blobs through the registry
    )
    repo = random_repo("gc-s3")
    server.start()
    try:
        with client_factory(server) as client:
            kept = push_image(client, repo, "v1", shared=b"shared " * 30)
            removed = push_image(client, repo, "v2", shared=b"shared " * 30)
            delete_manifest(client, repo, removed.digest)
            push_blob(client, repo, b"orphan on s3")
        server.stop()
        expected = (set(removed.blobs) | {removed.digest, digest_of(b"orphan on s3")}) - {
            digest_of(b"shared " * 30)
        }

        def keys() -> set[str]:
            listing = moto.client().list_objects_v2(Bucket=bucket, Prefix="docker/registry/v2/")
            return {item["Key"] for item in listing.get("Contents", [])}

        def run_dockyard(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [sys.executable, "-m", "dockyard", "garbage-collect",
                 str(server.config_path), *args],
                capture_output=True, text=True, timeout=300, check=False,
                env={**env(), **SAFE_AWS_ENV},
            )
            assert done.returncode == 0, (done.stdout, done.stderr)
            return done

        before = keys()
        theirs = subprocess.run(
            [DISTRIBUTION_BINARY, "garbage-collect", "--dry-run", str(server.config_path)],
            capture_output=True, text=True, timeout=300, check=False,
            env={"PATH": "/usr/bin:/bin", **SAFE_AWS_ENV},
        )
        assert theirs.returncode == 0, theirs.stdout
        ours = run_dockyard("--dry-run")
        assert keys() == before
        assert would_delete(ours.stderr, r"would delete blob {digest}") == expected
        assert would_delete(theirs.stdout, r"blob eligible for deletion: {digest}") == expected

        run_dockyard()
        for digest in expected:
            assert f"docker/registry/v2/blobs/sha256/{digest[7:9]}/{digest[7:]}/data" not in keys()
        server.start()
        with client_factory(server) as client:
            assert_pulls(client, kept)
    finally:
        server.stop()
