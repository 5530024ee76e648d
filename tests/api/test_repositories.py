"""dockyard's repository API and commands on the metadata index (issue 12).

``/dockyard/v1/repositories[/<name>]`` (usage, list, delete) with auth off and on,
``dockyard usage`` / ``delete-repository`` / ``index verify|rebuild`` on the same
storage, sizes checked against the bytes pushed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.support.api import TARGET, assert_error, push_blob, random_repo
from tests.support.auth import write_htpasswd
from tests.support.index import dockyard_command
from tests.support.manifests import Built, image, put_manifest
from tests.support.servers import RegistryProcess

Factory = Callable[..., RegistryProcess]
ClientFactory = Callable[[RegistryProcess], httpx.Client]
LINK_NEXT = re.compile(r'^<([^>]+)>;\s*rel="next"$')

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="dockyard's own API")

DELETES = {"storage": {"delete": {"enabled": True}}}


def _blob_bytes(built: Built, *shared: bytes) -> int:
    """Bytes of an image pushed by ``image()``: config and layers as in its manifest."""
    document = json.loads(built.body)
    return (document["config"]["size"] + sum(layer["size"] for layer in document["layers"])
            + sum(len(s) for s in shared))


def _usage(client: httpx.Client, repo: str) -> dict[str, object]:
    response = client.get(f"/dockyard/v1/repositories/{repo}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_usage_counts_and_sizes_with_shared_blobs(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory(DELETES)
    client = client_factory(server)
    one, two = random_repo(), random_repo()
    shared = b"a layer both repositories hold" * 100
    shared_digest = push_blob(client, one, shared)
    push_blob(client, two, shared)
    first = image(client, one, layers=2, extra_layers=[{
        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "digest": shared_digest, "size": len(shared)}])
    put_manifest(client, one, "v1", first)
    put_manifest(client, one, "v1-again", first)
    second = image(client, two, layers=1)
    put_manifest(client, two, "latest", second)

    usage = _usage(client, one)
    own = _blob_bytes(first) - len(shared)  # config + two layers
    assert usage["name"] == one
    assert (usage["tags"], usage["manifests"], usage["blobs"]) == (2, 1, 5)
    assert usage["size"] == own + len(shared) + first.size
    assert usage["exclusive_size"] == own + first.size

    # The list: catalog order and paging, with the same sizes.
    listed = client.get("/dockyard/v1/repositories", params={"n": 1})
    assert listed.status_code == 200
    page = listed.json()["repositories"]
    assert [r["name"] for r in page] == sorted([one, two])[:1]
    match = LINK_NEXT.match(listed.headers["Link"])
    assert match and "n=1" in match.group(1)
    rest = client.get(match.group(1)).json()["repositories"]
    assert [r["name"] for r in rest] == sorted([one, two])[1:]
    assert {r["name"]: r for r in [*page, *rest]}[one] == usage

    # dockyard usage prints the same table from the same index.
    table = dockyard_command(server, "usage", str(server.config_path)).stdout
    row = next(line.split() for line in table.splitlines() if line.startswith(one + " "))
    assert row[1:4] == ["2", "1", "5"]

    assert_error(client.get(f"/dockyard/v1/repositories/{random_repo()}"), 404, "NAME_UNKNOWN")
    assert_error(client.get("/dockyard/v1/repositories/Not..Valid"), 400, "NAME_INVALID")


def test_delete_repository_through_the_api(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory(DELETES)
    client = client_factory(server)
    gone, kept, nested = random_repo(), random_repo(), None
    nested = f"{gone}/inner"
    shared = b"shared between the two" * 50
    shared_digest = push_blob(client, gone, shared)
    push_blob(client, kept, shared)
    put_manifest(client, gone, "v1", image(client, gone))
    put_manifest(client, nested, "v1", image(client, nested))

    response = client.delete(f"/dockyard/v1/repositories/{gone}")
    assert response.status_code == 202, response.text
    names = client.get("/v2/_catalog", params={"n": 1000}).json()["repositories"]
    assert gone not in names and kept in names and nested in names
    assert_error(client.get(f"/v2/{gone}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{gone}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{gone}/blobs/{shared_digest}").status_code == 404
    # Blobs another repository uses are untouched, and so is the nested repository.
    assert client.get(f"/v2/{kept}/blobs/{shared_digest}").content == shared
    assert client.get(f"/v2/{nested}/tags/list").json()["tags"] == ["v1"]
    assert_error(client.delete(f"/dockyard/v1/repositories/{gone}"), 404, "NAME_UNKNOWN")
    verify = dockyard_command(server, "index", "verify", str(server.config_path), check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_delete_is_refused_when_deletes_are_disabled(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory({"storage": {"delete": {"enabled": False}}})
    client = client_factory(server)
    repo = random_repo()
    put_manifest(client, repo, "v1", image(client, repo))
    assert_error(client.delete(f"/dockyard/v1/repositories/{repo}"), 405, "UNSUPPORTED")
    done = dockyard_command(server, "delete-repository", str(server.config_path), repo,
                            check=False)
    assert done.returncode == 1 and "storage.delete.enabled" in done.stderr
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]


def test_delete_repository_command_beside_the_server(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory(DELETES)
    client = client_factory(server)
    repo = random_repo()
    put_manifest(client, repo, "v1", image(client, repo))
    done = dockyard_command(server, "delete-repository", str(server.config_path), repo)
    assert f"deleted repository {repo}" in done.stdout
    # The running server reads the same index: gone from its listings at once.
    assert repo not in client.get("/v2/_catalog").json()["repositories"]
    assert_error(client.get(f"/dockyard/v1/repositories/{repo}"), 404, "NAME_UNKNOWN")


def test_repository_api_with_basic_auth(
    registry_factory: Factory, client_factory: ClientFactory, tmp_path: Path
) -> None:
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {"alice": "secret"})
    server = registry_factory({**DELETES, "auth": {"htpasswd": {
        "realm": "dockyard", "path": str(htpasswd)}}})
    anonymous = client_factory(server)
    alice = client_factory(server)
    alice.auth = httpx.BasicAuth("alice", "secret")
    repo = random_repo()
    put_manifest(alice, repo, "v1", image(alice, repo))
    for method, path in (("GET", "/dockyard/v1/repositories"),
                         ("GET", f"/dockyard/v1/repositories/{repo}"),
                         ("DELETE", f"/dockyard/v1/repositories/{repo}")):
        assert_error(anonymous.request(method, path), 401, "UNAUTHORIZED")
    assert _usage(alice, repo)["tags"] == 1
    assert alice.delete(f"/dockyard/v1/repositories/{repo}").status_code == 202
    assert repo not in alice.get("/v2/_catalog").json()["repositories"]


def test_a_tree_written_by_another_program_is_indexed_by_rebuild(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    """Written behind the index's back: verify reports the drift, rebuild repairs it."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo()
    put_manifest(client, repo, "v1", image(client, repo))
    tags = server.root / "docker/registry/v2/repositories" / repo / "_manifests/tags"
    current = (tags / "v1/current/link").read_text()
    (tags / "copied/current").mkdir(parents=True)
    (tags / "copied/current/link").write_text(current)
    drift = dockyard_command(server, "index", "verify", str(server.config_path), check=False)
    assert drift.returncode == 1
    assert f"{repo}:copied: storage {current}, index None" in drift.stderr
    dockyard_command(server, "index", "rebuild", str(server.config_path))
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["copied", "v1"]
    dockyard_command(server, "index", "verify", str(server.config_path))


def test_a_crash_between_storage_write_and_index_update_is_repaired(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    """SIGKILL after the storage write, before the index update: verify sees it,
    rebuild repairs it (storage is the truth and kept the write)."""
    server = registry_factory()
    repo = random_repo()
    with client_factory(server) as client:
        built = image(client, repo, layers=2)
    server.stop()
    server.env["DOCKYARD_FAULT_KILL_BEFORE_INDEX"] = "1"
    server.start()
    with client_factory(server) as client, pytest.raises(httpx.TransportError):
        put_manifest(client, repo, "v1", built)
    server.kill()
    del server.env["DOCKYARD_FAULT_KILL_BEFORE_INDEX"]
    tag_link = (server.root / "docker/registry/v2/repositories" / repo
                / "_manifests/tags/v1/current/link")
    assert tag_link.read_text() == built.digest  # storage has the write
    drift = dockyard_command(server, "index", "verify", str(server.config_path), check=False)
    assert drift.returncode == 1
    assert f"{repo}@{built.digest}: manifest missing from the index" in drift.stderr
    dockyard_command(server, "index", "rebuild", str(server.config_path))
    dockyard_command(server, "index", "verify", str(server.config_path))
    server.start()
    with client_factory(server) as client:
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        assert _usage(client, repo)["manifests"] == 1


def test_concurrent_pushes_on_two_workers_keep_the_index_right(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    """``--workers 2``: each worker writes the one SQLite file (WAL); no write is lost."""
    from concurrent.futures import ThreadPoolExecutor

    server = registry_factory(extra_args=["--workers", "2"])
    repos = [random_repo() for _ in range(4)]

    def push(repo: str) -> None:
        with client_factory(server) as client:
            built = image(client, repo)
            for tag in range(6):
                put_manifest(client, repo, f"t{tag}", built)
            assert client.delete(f"/v2/{repo}/manifests/t0").status_code == 202

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(push, repos))
    with client_factory(server) as client:
        for repo in repos:
            tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
            assert tags == [f"t{i}" for i in range(1, 6)]
    done = dockyard_command(server, "index", "verify", str(server.config_path), check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_large_tag_list_stays_exact_across_workers(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    """``--workers 2``, 1,050 tags (kept in memory by each worker that lists them): a tag
    pushed or deleted on one connection is in (or out of) the next listing on that
    connection (the worker's own write) and on new ones (either worker: caught up by
    the tags written since, or read again after a deletion), whole and by pages."""
    from concurrent.futures import ThreadPoolExecutor

    server = registry_factory(extra_args=["--workers", "2"])
    repo = random_repo()
    expected = {f"t{i:04d}" for i in range(1050)}
    with client_factory(server) as pusher:
        built = image(pusher, repo)

        def push(tags: list[str]) -> None:
            with client_factory(server) as client:
                for tag in tags:
                    put_manifest(client, repo, tag, built)

        names = sorted(expected)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(push, [names[i::4] for i in range(4)]))

        def listed(client: httpx.Client) -> list[str]:
            whole = client.get(f"/v2/{repo}/tags/list")
            assert whole.status_code == 200, whole.text
            return list(whole.json()["tags"])

        for round_ in range(12):
            tag = f"n{round_:02d}"
            put_manifest(pusher, repo, tag, built)
            expected.add(tag)
            if round_ % 4 == 3:
                gone = sorted(expected)[round_]
                assert pusher.delete(f"/v2/{repo}/manifests/{gone}").status_code == 202
                expected.discard(gone)
            assert listed(pusher) == sorted(expected)
            for _ in range(3):  # new connections: spread over both workers
                with client_factory(server) as other:
                    assert listed(other) == sorted(expected)
                    page = other.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": tag})
                    after = [t for t in sorted(expected) if t > tag][:2]
                    assert page.json()["tags"] == after


def test_pull_times_are_recorded_off_the_request_path(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    import asyncio
    import time

    from dockyard.index import SqlIndex
    from dockyard.index.sqlite import SqliteDatabase

    server = registry_factory()
    repo = random_repo()
    with client_factory(server) as client:
        built = image(client, repo)
        put_manifest(client, repo, "v1", built)
        before = time.time()
        assert client.get(f"/v2/{repo}/manifests/v1",
                          headers={"Accept": built.media_type}).status_code == 200
    server.stop()  # the batch is written at the latest when the server stops

    async def read() -> list[float | None]:
        index = SqlIndex(SqliteDatabase(str(server.root / "dockyard-index.db")))
        try:
            return [m.last_pull for m in await index.manifest_records(repo)]
        finally:
            await index.aclose()

    (pulled,) = asyncio.run(read())
    assert pulled is not None and pulled >= before


def test_a_start_on_content_with_no_index_builds_it_first(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory({"storage": {"index": {"driver": "none"}}})
    repo = random_repo()
    with client_factory(server) as client:
        put_manifest(client, repo, "v1", image(client, repo))
    server.stop()
    assert not (server.root / "dockyard-index.db").exists()
    server.reconfigure({"storage": {"index": {"driver": "sqlite"}}})
    server.start()
    with client_factory(server) as client:
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        assert _usage(client, repo)["manifests"] == 1
    assert "index: building from storage" in server.log_text()
    assert "indexed 1 repositories, 1 tags, 1 manifests" in server.log_text()
