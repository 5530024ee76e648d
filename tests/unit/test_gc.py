"""Garbage collection on the in-memory and filesystem drivers: what is kept, what goes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.cache.base import CacheFailure
from dockyard.cli import main
from dockyard.digest import Digest
from dockyard.maintenance.gc import GCSummary, garbage_collect
from dockyard.registry.namespace import Namespace, RegistryOptions, Repository
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import (
    CheckedDriver,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from dockyard.storage.drivers.filesystem import FilesystemDriver
from dockyard.storage.drivers.inmemory import InMemoryDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.tags import TagStore
from dockyard.types import BlobDescriptor

T = TypeVar("T")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(params=["inmemory", "filesystem"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> CheckedDriver:
    if request.param == "inmemory":
        return CheckedDriver(InMemoryDriver())
    return CheckedDriver(FilesystemDriver(str(tmp_path / "root")))


@pytest.fixture
def memory() -> CheckedDriver:
    return CheckedDriver(InMemoryDriver())


class Registry:
    """Pushes through the registry layer, as the HTTP handlers do."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self.namespace = Namespace(driver, RegistryOptions(delete_enabled=True))

    def repo(self, name: str) -> Repository:
        return self.namespace.repository(name)

    async def blob(self, repo: str, data: bytes, algorithm: str = "sha256") -> Digest:
        digest = Digest.of(data, algorithm)

        async def body() -> AsyncIterator[bytes]:
            yield data

        await self.repo(repo).push_blob(digest, body(), len(data))
        return Digest.of(data)

    async def put(self, repo: str, ref: str | None, document: dict[str, Any]) -> Digest:
        body = json.dumps(document).encode()
        digest = Digest.of(body)
        await self.repo(repo).put_manifest(ref or str(digest), body, document["mediaType"])
        return digest

    async def image(
        self,
        repo: str,
        tag: str | None,
        *layers: bytes,
        config: bytes = b'{"os":"linux"}',
        subject: Digest | None = None,
        media_type: str = OCI_MANIFEST,
        artifact_type: str | None = None,
    ) -> Digest:
        """An image (or, with ``subject``, a referrer) whose blobs are pushed first."""
        document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type:
            document["artifactType"] = artifact_type
        document["config"] = await self.descriptor(repo, OCI_CONFIG, config)
        document["layers"] = [await self.descriptor(repo, OCI_LAYER, data) for data in layers]
        if subject is not None:
            size = len(await self.namespace.blobs.get(subject))
            document["subject"] = {"mediaType": OCI_MANIFEST, "digest": str(subject),
                                   "size": size}
        return await self.put(repo, tag, document)

    async def descriptor(self, repo: str, media_type: str, data: bytes) -> dict[str, Any]:
        digest = await self.blob(repo, data)
        return {"mediaType": media_type, "digest": str(digest), "size": len(data)}

    async def index(
        self, repo: str, tag: str | None, *children: Digest, media_type: str = OCI_INDEX
    ) -> Digest:
        manifests = []
        for child in children:
            size = len(await self.namespace.blobs.get(child))
            manifests.append({"mediaType": OCI_MANIFEST, "digest": str(child), "size": size,
                              "platform": {"architecture": "amd64", "os": "linux"}})
        return await self.put(
            repo, tag, {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        )

    async def has_blob(self, digest: Digest) -> bool:
        return await exists(self.driver, paths.blob_data_path(digest))

    async def has_manifest(self, repo: str, digest: Digest) -> bool:
        return await ManifestStore(self.driver, self.namespace.blobs, repo).exists(digest)

    async def collect(self, **options: Any) -> tuple[GCSummary, list[str]]:
        lines: list[str] = []
        summary = await garbage_collect(self.driver, progress=lines.append, **options)
        return summary, lines


async def exists(driver: StorageDriver, path: str) -> bool:
    try:
        await driver.stat(path)
    except PathNotFound:
        return False
    return True


async def snapshot(driver: StorageDriver) -> dict[str, bytes]:
    """Every file below the root with its content."""
    files: dict[str, bytes] = {}
    try:
        async for info in driver.walk("/docker"):
            if not info.is_dir:
                files[info.path] = await driver.get_content(info.path)
    except PathNotFound:
        pass
    return files


def test_shared_blobs_stay_and_an_orphan_goes_with_its_layer_link(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        shared = b"shared layer" * 10
        one = await reg.image("library/one", "v1", shared, b"only in one")
        two = await reg.image("team/x/two", "latest", shared, config=b'{"os":"windows"}')
        orphan = await reg.blob("library/one", b"uploaded, never referenced")
        # The same orphan bytes linked from a second repository, and by sha512 too.
        await reg.blob("team/x/two", b"uploaded, never referenced", "sha512")
        before = await snapshot(driver)

        summary, lines = await reg.collect()

        assert summary.errors == 0 and summary.swept
        assert summary.repositories == 2
        assert summary.manifests_marked == 2
        assert summary.blobs_deleted == 1
        assert summary.bytes_freed == len(b"uploaded, never referenced")
        assert summary.layer_links_deleted == 3  # sha256 in one, sha256 + sha512 in two
        assert summary.blobs_examined == 7  # 2 manifests, 2 configs, 2 layers, the orphan
        assert not await reg.has_blob(orphan)
        for repo in ("library/one", "team/x/two"):
            assert not await exists(driver, paths.layer_link_path(repo, orphan))
        sha512 = Digest.of(b"uploaded, never referenced", "sha512")
        assert not await exists(driver, paths.layer_link_path("team/x/two", sha512))
        after = await snapshot(driver)
        gone = set(before) - set(after)
        assert gone == {
            paths.blob_data_path(orphan),
            paths.layer_link_path("library/one", orphan),
            paths.layer_link_path("team/x/two", orphan),
            paths.layer_link_path("team/x/two", sha512),
        }
        assert all(after[p] == before[p] for p in after)
        for repo, digest in (("library/one", one), ("team/x/two", two)):
            stored = await reg.repo(repo).get_manifest(str(digest))
            assert stored.digest == digest
        assert f"deleted blob {orphan} (26 B)" in lines
        assert "library/one: 1 manifest marked" in lines
        assert str(summary).startswith("garbage collection: 2 repositories, 2 manifests marked")

    run(scenario())


def test_untagged_manifest_is_kept_without_the_flag_and_deleted_with_it(
    driver: CheckedDriver,
) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        repo = "app"
        old = await reg.image(repo, "latest", b"base", b"old top")
        new = await reg.image(repo, "latest", b"base", b"new top")  # moves the tag
        pushed_by_digest = await reg.image(repo, None, b"by digest", config=b'{"n":3}')
        kept_tag = await reg.image(repo, "stable", b"base", b"stable top")
        old_top, by_digest_layer = Digest.of(b"old top"), Digest.of(b"by digest")

        summary, _ = await reg.collect()
        assert summary.manifests_marked == 4 and summary.blobs_deleted == 0
        assert await reg.has_manifest(repo, old) and await reg.has_blob(old_top)

        summary, lines = await reg.collect(delete_untagged=True)
        assert summary.errors == 0
        assert summary.manifests_marked == 2
        assert summary.manifests_deleted == 2
        assert f"app: deleted manifest {old}" in lines
        assert "app: 2 manifests marked, deleted 2 untagged" in lines
        for digest in (old, pushed_by_digest):
            assert not await reg.has_manifest(repo, digest)
            assert not await reg.has_blob(digest)
            assert not await exists(driver, paths.manifest_revision_path(repo, digest))
        for layer in (old_top, by_digest_layer, Digest.of(b'{"n":3}')):
            assert not await reg.has_blob(layer)
            assert not await exists(driver, paths.layer_link_path(repo, layer))
        # The tag's history no longer names the deleted revision; the rest is intact.
        assert not await exists(driver, paths.tag_index_entry_link_path(repo, "latest", old))
        assert await exists(driver, paths.tag_index_entry_link_path(repo, "latest", new))
        for digest in (new, kept_tag):
            assert await reg.has_manifest(repo, digest)
        assert await reg.has_blob(Digest.of(b"base"))
        assert await TagStore(driver, repo).get("latest") == new

        again, _ = await reg.collect(delete_untagged=True)
        assert (again.manifests_deleted, again.blobs_deleted, again.layer_links_deleted) == (
            0, 0, 0)

    run(scenario())


def test_children_of_a_tagged_index_are_kept_with_delete_untagged(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        repo = "multi"
        amd = await reg.image(repo, None, b"amd64 layer")
        arm = await reg.image(repo, None, b"arm64 layer", config=b'{"arch":"arm64"}')
        tagged = await reg.index(repo, "v1", amd, arm)
        nested = await reg.index(repo, "nested", tagged)  # an index of an index
        lone = await reg.image(repo, None, b"lone layer", config=b'{"lone":1}')
        stale = await reg.index(repo, None, lone, media_type=DOCKER_LIST)
        # docker-style list whose child is a schema2 manifest
        s2 = await reg.image(repo, None, b"s2 layer", config=b'{"s2":1}',
                             media_type=DOCKER_SCHEMA2)
        s2_list = await reg.put(repo, "docker", {
            "schemaVersion": 2, "mediaType": DOCKER_LIST,
            "manifests": [{"mediaType": DOCKER_SCHEMA2, "digest": str(s2),
                           "size": len(await reg.namespace.blobs.get(s2)),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        })

        summary, _ = await reg.collect(delete_untagged=True)

        assert summary.errors == 0
        assert summary.manifests_deleted == 2  # the untagged list and its child
        for digest in (amd, arm, tagged, nested, s2, s2_list):
            assert await reg.has_manifest(repo, digest), digest
            assert await reg.has_blob(digest)
        for layer in (b"amd64 layer", b"arm64 layer", b"s2 layer"):
            assert await reg.has_blob(Digest.of(layer))
        for digest in (lone, stale, Digest.of(b"lone layer")):
            assert not await reg.has_blob(digest)
        assert not await reg.has_manifest(repo, lone)
        # The index still pulls whole.
        stored = await reg.repo(repo).get_manifest("v1")
        children = [m["digest"] for m in json.loads(stored.body)["manifests"]]
        for child in children:
            child_manifest = json.loads((await reg.repo(repo).get_manifest(child)).body)
            for layer in child_manifest["layers"]:
                await reg.repo(repo).stat_blob(Digest.parse(layer["digest"]))

    run(scenario())


def test_referrers_of_kept_manifests_are_kept(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        repo = "signed"
        image = await reg.image(repo, "v1", b"image layer")
        signature = await reg.image(repo, None, b"signature", config=b"{}",
                                    subject=image, artifact_type="application/vnd.sig")
        # A referrer of the referrer (an attestation of the signature).
        attestation = await reg.image(repo, None, b"attestation", config=b'{"a":1}',
                                      subject=signature, artifact_type="application/vnd.att")
        untagged = await reg.image(repo, None, b"old image layer", config=b'{"old":1}')
        old_sbom = await reg.image(repo, None, b"old sbom", config=b'{"sbom":1}',
                                   subject=untagged, artifact_type="application/vnd.sbom")

        summary, lines = await reg.collect(delete_untagged=True)

        assert summary.errors == 0
        assert summary.manifests_marked == 3 and summary.manifests_deleted == 2
        for digest in (image, signature, attestation):
            assert await reg.has_manifest(repo, digest)
        for data in (b"signature", b"attestation", b"image layer"):
            assert await reg.has_blob(Digest.of(data))
        for digest in (untagged, old_sbom):
            assert not await reg.has_manifest(repo, digest)
            assert not await reg.has_blob(digest)
        assert not await reg.has_blob(Digest.of(b"old sbom"))
        # The referrers API still lists the kept ones; the deleted one's link is gone.
        listed = await reg.repo(repo).referrers(image, None)
        assert [d["digest"] for d in listed] == [str(signature)]
        assert not await exists(
            driver, paths.manifest_referrer_link_path(repo, untagged, old_sbom)
        )
        assert f"{repo}: deleted manifest {old_sbom}" in lines

    run(scenario())


def test_a_tagged_referrer_keeps_its_link_when_its_subject_goes(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        subject = await reg.image("r", None, b"subject layer")
        note = await reg.image("r", "note", b"note", config=b'{"note":1}', subject=subject)

        summary, _ = await reg.collect(delete_untagged=True)

        assert summary.manifests_deleted == 1
        assert not await reg.has_manifest("r", subject)
        assert await reg.has_manifest("r", note)
        # Listed again should the subject be pushed back.
        link = paths.manifest_referrer_link_path("r", subject, note)
        assert await memory.get_content(link) == str(note).encode()

    run(scenario())


def test_schema1_signatures_are_kept(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        blobs = BlobStore(driver)
        store = ManifestStore(driver, blobs, "legacy/s1")
        layer = await reg.blob("legacy/s1", b"schema1 layer")

        def payload(tag: str) -> bytes:
            return json.dumps({
                "schemaVersion": 1, "name": "legacy/s1", "tag": tag, "architecture": "amd64",
                "fsLayers": [{"blobSum": str(layer)}],
                "history": [{"v1Compatibility": json.dumps({"id": tag})}],
            }, indent=3).encode()

        signature = b'{"header":{"alg":"ES256"},"signature":"c2ln","protected":"cA"}'
        tagged = await store.put(payload("v1"), (signature,))
        await TagStore(driver, "legacy/s1").tag("v1", tagged)
        untagged_signature = signature.replace(b"c2ln", b"b2xk")
        untagged = await store.put(payload("v0"), (untagged_signature,))

        summary, _ = await reg.collect()
        assert summary.errors == 0 and summary.blobs_deleted == 0
        assert await reg.has_blob(Digest.of(signature))
        assert await reg.has_blob(Digest.of(untagged_signature))
        assert await reg.has_blob(layer)

        summary, _ = await reg.collect(delete_untagged=True)
        assert summary.manifests_deleted == 1
        assert await reg.has_blob(Digest.of(signature))
        assert await store.signatures(tagged) == [signature]
        assert not await reg.has_blob(Digest.of(untagged_signature))
        assert not await exists(driver, paths.manifest_revision_path("legacy/s1", untagged))
        assert await reg.has_blob(layer)

    run(scenario())


def test_dry_run_deletes_nothing_and_reports_what_would_go(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        await reg.image("a", "v1", b"kept")
        old = await reg.image("a", None, b"untagged", config=b'{"u":1}')
        orphan = await reg.blob("a", b"orphan")
        await driver.put_content(paths.layer_link_path("a", Digest.of(b"gone")),
                                 str(Digest.of(b"gone")).encode())
        before = await snapshot(driver)

        dry, lines = await reg.collect(dry_run=True, delete_untagged=True)

        assert await snapshot(driver) == before
        assert dry.dry_run and dry.errors == 0
        assert f"a: would delete manifest {old}" in lines
        assert f"would delete blob {orphan} (6 B)" in lines
        assert f"a: would delete layer link {Digest.of(b'gone')}" in lines
        assert "would delete 1 untagged manifest" in str(dry)
        assert str(dry).startswith("garbage collection (dry run): ")

        real, _ = await reg.collect(delete_untagged=True)
        assert (dry.manifests_deleted, dry.blobs_deleted, dry.bytes_freed,
                dry.layer_links_deleted, dry.blobs_examined) == (
            real.manifests_deleted, real.blobs_deleted, real.bytes_freed,
            real.layer_links_deleted, real.blobs_examined)
        assert real.blobs_deleted == 4  # orphan, untagged manifest, its config and layer

    run(scenario())


def test_dangling_layer_links_are_removed(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(driver)
        await reg.image("d", "v1", b"layer")
        # What distribution 2.8's garbage collection leaves: links to deleted blobs.
        missing = Digest.of(b"deleted by docker-registry")
        await driver.put_content(paths.layer_link_path("d", missing), str(missing).encode())
        corrupt = Digest.of(b"corrupt link")
        await driver.put_content(paths.layer_link_path("d", corrupt), b"not a digest")

        summary, lines = await reg.collect()

        assert summary.layer_links_deleted == 1 and summary.blobs_deleted == 0
        assert not await exists(driver, paths.layer_link_path("d", missing))
        assert f"d: deleted layer link {missing}" in lines
        # A link that holds no digest is not ours to judge.
        assert await exists(driver, paths.layer_link_path("d", corrupt))
        assert await exists(driver, paths.layer_link_path("d", Digest.of(b"layer")))

    run(scenario())


def test_manifests_linked_only_under_layers_are_kept(memory: CheckedDriver) -> None:
    """distribution 2.1.0 linked revisions under ``_layers``; tags still name them."""

    async def scenario() -> None:
        reg = Registry(memory)
        image = await reg.image("old", "v1", b"2.1 layer")
        await memory.delete(paths.manifest_revision_path("old", image))
        await memory.put_content(paths.layer_link_path("old", image), str(image).encode())
        untagged = await reg.image("old", "v0", b"2.1 old layer", config=b'{"v":0}')
        await memory.delete(paths.manifest_revision_path("old", untagged))
        await memory.put_content(paths.layer_link_path("old", untagged), str(untagged).encode())
        await TagStore(memory, "old").untag("v0")
        assert await reg.has_manifest("old", image)

        summary, _ = await reg.collect()
        assert summary.manifests_marked == 1 and summary.errors == 0
        # v0's history went with the tag: nothing names the untagged one any more.
        assert summary.blobs_deleted == 3
        assert await reg.has_manifest("old", image)
        assert await reg.has_blob(Digest.of(b"2.1 layer"))

        await TagStore(memory, "old").untag("v1")
        summary, _ = await reg.collect(delete_untagged=True)
        assert summary.manifests_deleted == 0  # no tag names it: no longer found at all
        assert not await reg.has_manifest("old", image)

    run(scenario())


def test_legacy_manifest_in_tag_history_is_deleted_when_untagged(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        first = await reg.image("old", "v1", b"first")
        await memory.delete(paths.manifest_revision_path("old", first))
        await memory.put_content(paths.layer_link_path("old", first), str(first).encode())
        await reg.image("old", "v1", b"second")  # v1 moves on; its index keeps `first`

        summary, lines = await reg.collect(delete_untagged=True)

        assert summary.manifests_deleted == 1 and summary.errors == 0
        assert f"old: deleted manifest {first}" in lines
        assert not await reg.has_manifest("old", first)
        assert not await exists(memory, paths.layer_link_path("old", first))
        assert not await exists(memory, paths.tag_index_entry_link_path("old", "v1", first))
        assert not await reg.has_blob(Digest.of(b"first"))

    run(scenario())


def test_an_unreadable_revision_stops_the_sweep(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        await reg.image("good", "v1", b"good layer")
        orphan = await reg.blob("good", b"orphan")
        garbage = await BlobStore(memory).put(b"\x00\x01 not json")
        await memory.put_content(paths.manifest_revision_link_path("bad", garbage.digest),
                                 str(garbage.digest).encode())
        before = await snapshot(memory)

        summary, lines = await reg.collect(delete_untagged=True)

        assert summary.errors == 1 and not summary.swept
        assert any(line.startswith("error: bad: revision") for line in lines)
        assert "blobs not swept" in str(summary)
        assert await snapshot(memory) == before
        assert await reg.has_blob(orphan)

    run(scenario())


def test_a_revision_whose_blob_is_missing_is_not_an_error(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        image = await reg.image("m", "v1", b"layer")
        await memory.delete(paths.blob_dir_path(image))

        summary, lines = await reg.collect()

        assert summary.errors == 0 and summary.swept
        assert any("which is missing" in line for line in lines)
        # Its layers are no longer referenced by anything that can be read.
        assert not await reg.has_blob(Digest.of(b"layer"))

    run(scenario())


def test_a_registry_without_repositories(memory: CheckedDriver) -> None:
    summary = run(garbage_collect(memory))
    assert summary == GCSummary(swept=True)
    assert str(summary) == (
        "garbage collection: 0 repositories, 0 manifests marked, 0 blobs marked, "
        "0 examined, deleted 0 (0 B) and 0 layer links, 0 errors"
    )


def test_cli_garbage_collect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    driver = CheckedDriver(FilesystemDriver(str(root)))

    async def setup() -> tuple[Digest, Digest]:
        reg = Registry(driver)
        await reg.image("cli", "v1", b"layer")
        untagged = await reg.image("cli", None, b"untagged layer", config=b"{}")
        return untagged, await reg.blob("cli", b"orphan")

    untagged, orphan = run(setup())
    orphan_dir = root / paths.blob_dir_path(orphan).lstrip("/")

    assert main(["garbage-collect", str(config), "--dry-run", "-m"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("garbage collection (dry run): 1 repository, 1 manifest marked")
    assert f"would delete blob {orphan}" in err
    assert f"cli: would delete manifest {untagged}" in err
    assert "dry run: nothing is deleted" in err
    assert orphan_dir.is_dir()

    assert main(["garbage-collect", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "deleted 1 (6 B)" in out, out
    assert "stop it, or set storage.maintenance.readonly" in err
    assert not orphan_dir.exists()

    assert main(["garbage-collect", str(config), "--delete-untagged"]) == 0
    out, _ = capsys.readouterr()
    assert "deleted 1 untagged manifest" in out


def test_cli_garbage_collect_exits_1_on_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    link = root / paths.manifest_revision_link_path("x", Digest.of(b"?")).lstrip("/")
    link.parent.mkdir(parents=True)
    link.write_text(str(Digest.of(b"?")))
    blob = root / paths.blob_data_path(Digest.of(b"?")).lstrip("/")
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"?")

    assert main(["garbage-collect", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "1 error" in out and "not sweeping" in err
    assert blob.exists()


def test_a_layer_referenced_by_its_sha512_digest_is_kept(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        data = b"a layer pushed and referenced as sha512"
        canonical = await reg.blob("five", data, "sha512")
        alias = Digest.of(data, "sha512")
        config = await reg.descriptor("five", OCI_CONFIG, b"{}")
        await reg.put("five", "v1", {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
            "layers": [{"mediaType": OCI_LAYER, "digest": str(alias), "size": len(data)}],
        })

        summary, _ = await reg.collect()

        assert summary.blobs_deleted == 0 and summary.layer_links_deleted == 0
        assert await reg.has_blob(canonical)
        assert (await reg.repo("five").stat_blob(alias)).size == len(data)

    run(scenario())


class DictCache:
    """Global and per-repository descriptors, as the Redis cache keeps them."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str | None, Digest], BlobDescriptor] = {}

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        return self.entries.get((repository, digest))

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        self.entries[repository, desc.digest] = desc

    async def clear(self, repository: str | None, digest: Digest) -> None:
        self.entries.pop((repository, digest), None)


def test_the_blob_descriptor_cache_forgets_what_goes(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        await reg.image("c", "v1", b"kept layer")
        orphan = await reg.blob("c", b"orphan")
        cache = DictCache()
        for repository in (None, "c"):
            for data in (b"kept layer", b"orphan"):
                await cache.set(repository, BlobDescriptor(Digest.of(data), len(data)))

        await garbage_collect(memory, cache=cache, dry_run=True)
        assert len(cache.entries) == 4

        summary = await garbage_collect(memory, cache=cache)

        assert summary.blobs_deleted == 1
        assert await cache.get(None, orphan) is None
        assert await cache.get("c", orphan) is None
        assert await cache.get("c", Digest.of(b"kept layer")) is not None

    run(scenario())


class BrokenCache:
    calls = 0

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        raise AssertionError("not used")

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        raise AssertionError("not used")

    async def clear(self, repository: str | None, digest: Digest) -> None:
        self.calls += 1
        raise CacheFailure("connection refused")


def test_an_unreachable_cache_is_one_error_and_the_sweep_goes_on(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        reg = Registry(memory)
        first, second = await reg.blob("c", b"one"), await reg.blob("c", b"two")
        cache = BrokenCache()
        lines: list[str] = []

        summary = await garbage_collect(memory, cache=cache, progress=lines.append)

        assert summary.blobs_deleted == 2 and summary.errors == 1 and cache.calls == 1
        assert any("flush it before the registry serves again" in line for line in lines)
        assert not await reg.has_blob(first) and not await reg.has_blob(second)

    run(scenario())


class FailingDriver(CheckedDriver):
    """Reading anything below ``broken`` fails as an unreachable backend does."""

    def __init__(self, inner: StorageDriver, broken: str) -> None:
        super().__init__(inner)
        self.broken = broken

    async def get_content(self, path: str) -> bytes:
        if path.startswith(self.broken):
            raise StorageError("connection reset", self.name)
        return await super().get_content(path)


def test_a_storage_error_while_marking_deletes_no_blob() -> None:
    async def scenario() -> None:
        inner = InMemoryDriver()
        reg = Registry(CheckedDriver(inner))
        await reg.image("fine", "v1", b"fine layer")
        await reg.image("flaky", "v1", b"flaky layer")
        await reg.image("flaky", None, b"untagged", config=b'{"u":1}')
        orphan = await reg.blob("fine", b"orphan")
        driver = FailingDriver(inner, paths.manifest_revisions_root("flaky"))
        lines: list[str] = []

        summary = await garbage_collect(driver, delete_untagged=True, progress=lines.append)

        assert not summary.swept and summary.errors >= 1
        assert summary.manifests_deleted == 0
        assert any(line.startswith("error: flaky: manifest") for line in lines)
        assert "not sweeping: marking was incomplete, so no blob is deleted" in lines
        assert await reg.has_blob(orphan)
        assert await reg.has_blob(Digest.of(b"untagged"))

    run(scenario())
