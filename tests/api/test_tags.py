"""Tags: the storage layout a PUT by tag writes, tag grammar, deletes, and tags/list.

docker-registry 2.8 lists tags in directory order and ignores ``n`` and ``last``;
those tests are skipped there (see each reason).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tests.support.api import (
    assert_error,
    deviates_on_distribution,
    digest_of,
    follow,
    random_repo,
)
from tests.support.manifests import (
    Built,
    get_manifest,
    image,
    index,
    link_text,
    manifest_path,
    put_manifest,
    repo_dir,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
LINK_NEXT = re.compile(r'^<([^>]+)>;\s*rel="next"$')


def tags_path(repo: str) -> str:
    return f"/v2/{repo}/tags/list"


def files_below(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by relative path, with its content."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]


def list_tags(client: httpx.Client, repo: str) -> list[str]:
    response = client.get(tags_path(repo))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == repo
    return list(body["tags"] or [])


def push_tags(client: httpx.Client, repo: str, tags: list[str]) -> Built:
    manifest = image(client, repo)
    for tag in tags:
        put_manifest(client, repo, tag, manifest)
    return manifest


# -- layout ------------------------------------------------------------------------------


def test_put_by_tag_writes_distributions_layout(
    client: httpx.Client, registry: RegistryProcess
) -> None:
    """Byte for byte: link files hold ``sha256:<hex>`` with no newline; a tag's ``index``
    records every revision it pointed to, ``current`` the last one."""
    repo = random_repo()
    first = image(client, repo)
    second = image(client, repo)
    put_manifest(client, repo, "latest", first)
    put_manifest(client, repo, "latest", second)
    put_manifest(client, repo, "stable", first)

    manifests = files_below(repo_dir(registry.root, repo) / "_manifests")
    expected = {
        f"revisions/sha256/{hex_of(first.digest)}/link": first.digest.encode(),
        f"revisions/sha256/{hex_of(second.digest)}/link": second.digest.encode(),
        "tags/latest/current/link": second.digest.encode(),
        f"tags/latest/index/sha256/{hex_of(first.digest)}/link": first.digest.encode(),
        f"tags/latest/index/sha256/{hex_of(second.digest)}/link": second.digest.encode(),
        "tags/stable/current/link": first.digest.encode(),
        f"tags/stable/index/sha256/{hex_of(first.digest)}/link": first.digest.encode(),
    }
    assert manifests == expected

    layers = files_below(repo_dir(registry.root, repo) / "_layers")
    assert layers == {
        f"sha256/{hex_of(blob)}/link": blob.encode() for blob in first.blobs + second.blobs
    }
    for manifest in (first, second):
        hex_digest = hex_of(manifest.digest)
        data = registry.root / f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
        assert data.read_bytes() == manifest.body
    for path in (repo_dir(registry.root, repo) / "_manifests").rglob("link"):
        link_text(path)  # no trailing newline

    assert get_manifest(client, repo, "latest").content == second.body
    assert get_manifest(client, repo, "stable").content == first.body


def test_retagging_moves_current_and_keeps_the_old_revision(client: httpx.Client) -> None:
    repo = random_repo()
    first, second = image(client, repo), image(client, repo)
    put_manifest(client, repo, "latest", first)
    put_manifest(client, repo, "latest", second)
    got = get_manifest(client, repo, "latest")
    assert got.headers["Docker-Content-Digest"] == second.digest
    assert get_manifest(client, repo, first.digest).content == first.body
    assert list_tags(client, repo) == ["latest"]


# -- grammar -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["a", "A", "0", "_", "v1.2.3-rc.1_build", "UPPER.lower-9", "t" * 128]
)
def test_valid_tags(client: httpx.Client, tag: str) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    put_manifest(client, repo, tag, manifest)
    assert get_manifest(client, repo, tag).content == manifest.body
    assert tag in list_tags(client, repo)


@deviates_on_distribution(
    "a reference that is neither a tag nor a digest does not match the route: "
    "404 text/plain '404 page not found'"
)
@pytest.mark.parametrize("tag", [".dot", "-dash", "t" * 129, "bad!", "sp%20ace", "a%2Fb"])
def test_invalid_tags(client: httpx.Client, tag: str) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    put_manifest(client, repo, "good", manifest)
    assert_error(put_manifest(client, repo, tag, manifest, expect=None), 400, "TAG_INVALID")
    # Names nothing, so nothing is found: 404, as the conformance suite expects.
    assert_error(get_manifest(client, repo, tag), 404, "MANIFEST_UNKNOWN")
    assert_error(client.head(manifest_path(repo, tag)), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(manifest_path(repo, tag)), 400, "TAG_INVALID")
    assert list_tags(client, repo) == ["good"]


# -- deletes -----------------------------------------------------------------------------


def test_delete_by_digest_removes_the_revision_and_its_tags(
    client: httpx.Client, registry: RegistryProcess
) -> None:
    repo = random_repo()
    doomed = push_tags(client, repo, ["a", "b"])
    kept = push_tags(client, repo, ["c"])
    response = client.delete(manifest_path(repo, doomed.digest))
    assert response.status_code == 202
    assert response.content == b""

    for reference in ("a", "b", doomed.digest):
        assert_error(get_manifest(client, repo, reference), 404, "MANIFEST_UNKNOWN")
        head = get_manifest(client, repo, reference, method="HEAD")
        assert head.status_code == 404
    assert get_manifest(client, repo, "c").content == kept.body
    assert sorted(list_tags(client, repo)) == ["c"]

    manifests = repo_dir(registry.root, repo) / "_manifests"
    assert not (manifests / f"revisions/sha256/{hex_of(doomed.digest)}/link").exists()
    assert (manifests / f"revisions/sha256/{hex_of(kept.digest)}/link").exists()
    assert not (manifests / "tags/a").exists()
    assert not (manifests / "tags/b").exists()
    # The blob stays for the garbage collector.
    hex_digest = hex_of(doomed.digest)
    blob = registry.root / f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    assert blob.read_bytes() == doomed.body

    assert_error(client.delete(manifest_path(repo, doomed.digest)), 404, "MANIFEST_UNKNOWN")


def test_delete_by_digest_leaves_tags_that_moved_on(client: httpx.Client) -> None:
    """A tag whose index lists the deleted revision but whose current is another stays."""
    repo = random_repo()
    old, new = image(client, repo), image(client, repo)
    put_manifest(client, repo, "latest", old)
    put_manifest(client, repo, "latest", new)
    assert client.delete(manifest_path(repo, old.digest)).status_code == 202
    assert get_manifest(client, repo, "latest").content == new.body
    assert list_tags(client, repo) == ["latest"]


def test_delete_child_of_an_index(client: httpx.Client) -> None:
    """Deleting a manifest an index refers to is allowed; the index stays."""
    repo = random_repo()
    child = image(client, repo)
    put_manifest(client, repo, child.digest, child)
    listing = index([child], media_type="application/vnd.docker.distribution.manifest.list.v2+json")
    put_manifest(client, repo, "multi", listing)
    assert client.delete(manifest_path(repo, child.digest)).status_code == 202
    assert get_manifest(client, repo, "multi").content == listing.body
    assert_error(get_manifest(client, repo, child.digest), 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_digest(client: httpx.Client) -> None:
    repo = random_repo()
    push_tags(client, repo, ["latest"])
    unknown = digest_of(b"no such manifest")
    assert_error(client.delete(manifest_path(repo, unknown)), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(manifest_path(random_repo(), unknown)), 404, "MANIFEST_UNKNOWN")


def test_all_tags_deleted_leaves_an_empty_list(client: httpx.Client) -> None:
    repo = random_repo()
    manifest = push_tags(client, repo, ["a", "b"])
    assert client.delete(manifest_path(repo, manifest.digest)).status_code == 202
    response = client.get(tags_path(repo))
    assert response.status_code == 200
    # distribution 2.8 answers "tags": null here, dockyard an empty list.
    assert response.json()["tags"] in ([], None)


@deviates_on_distribution("DELETE by tag answers 400 DIGEST_INVALID (tags cannot be deleted)")
def test_delete_by_tag_removes_that_tag_only(
    client: httpx.Client, registry: RegistryProcess
) -> None:
    repo = random_repo()
    manifest = push_tags(client, repo, ["a", "b"])
    response = client.delete(manifest_path(repo, "a"))
    assert response.status_code == 202
    assert response.content == b""
    assert_error(get_manifest(client, repo, "a"), 404, "MANIFEST_UNKNOWN")
    assert get_manifest(client, repo, "b").content == manifest.body
    assert get_manifest(client, repo, manifest.digest).content == manifest.body
    assert list_tags(client, repo) == ["b"]
    manifests = repo_dir(registry.root, repo) / "_manifests"
    assert not (manifests / "tags/a").exists()
    assert (manifests / f"revisions/sha256/{hex_of(manifest.digest)}/link").exists()

    assert_error(client.delete(manifest_path(repo, "a")), 404, "MANIFEST_UNKNOWN")


def test_deletes_disabled(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    server = registry_factory(overrides={"storage": {"delete": {"enabled": False}}})
    http = client_factory(server)
    repo = random_repo()
    manifest = push_tags(http, repo, ["latest"])
    assert_error(http.delete(manifest_path(repo, manifest.digest)), 405, "UNSUPPORTED")
    assert get_manifest(http, repo, manifest.digest).status_code == 200
    response = http.delete(manifest_path(repo, "latest"))
    assert response.status_code in (400, 405)  # 2.8: 400 DIGEST_INVALID (see below)
    assert get_manifest(http, repo, "latest").content == manifest.body


@deviates_on_distribution("DELETE by tag answers 400 DIGEST_INVALID whatever the setting")
def test_delete_by_tag_when_deletes_are_disabled(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    server = registry_factory(overrides={"storage": {"delete": {"enabled": False}}})
    http = client_factory(server)
    repo = random_repo()
    push_tags(http, repo, ["latest"])
    assert_error(http.delete(manifest_path(repo, "latest")), 405, "UNSUPPORTED")


# -- tags/list ---------------------------------------------------------------------------


TAGS = ["b", "a_b", "a-b", "C", "_x", "0", "a", "a.b", "latest", "v1", "v10", "v2", "Z9"]


def test_tags_list_names_every_tag(client: httpx.Client) -> None:
    repo = random_repo()
    push_tags(client, repo, TAGS)
    response = client.get(tags_path(repo))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Link" not in response.headers
    body = response.json()
    assert body["name"] == repo
    assert sorted(body["tags"]) == sorted(TAGS)


@deviates_on_distribution("tags come in the storage driver's directory order, unsorted")
def test_a_large_whole_tag_list_follows_every_tag_write(client: httpx.Client) -> None:
    """dockyard reuses a large list's encoded body while its tags are unchanged: a tag
    pushed, moved or deleted must show in the very next whole list."""
    repo = random_repo("many-tags")
    tags = [f"v{i:04d}" for i in range(1000)]
    manifest = push_tags(client, repo, tags)
    assert list_tags(client, repo) == tags
    assert list_tags(client, repo) == tags  # served again, unchanged
    put_manifest(client, repo, "zzz", manifest)
    assert list_tags(client, repo) == [*tags, "zzz"]
    # Pushed first, in the middle and moved: the body brought up to date is the one
    # json.dumps writes.
    expected = [*tags, "zzz"]
    for tag in ("A0", "v0500a", "v0001"):
        put_manifest(client, repo, tag, manifest)
        expected = sorted({*expected, tag})
        response = client.get(tags_path(repo))
        assert response.content == json.dumps({"name": repo, "tags": expected}).encode()
    response = client.delete(manifest_path(repo, "v0000"))
    assert response.status_code == 202, response.text
    expected.remove("v0000")
    assert list_tags(client, repo) == expected
    response = client.get(tags_path(repo))
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["name"] == repo


@deviates_on_distribution("tags come in the storage driver's directory order, unsorted")
def test_tags_list_is_in_lexical_order(client: httpx.Client) -> None:
    repo = random_repo()
    push_tags(client, repo, TAGS)
    assert list_tags(client, repo) == sorted(TAGS)  # byte order: digits, upper, _, lower


def test_tags_list_of_an_unknown_repository(client: httpx.Client) -> None:
    response = client.get(tags_path(random_repo()))
    assert_error(response, 404, "NAME_UNKNOWN")


def test_tags_list_of_a_repository_with_blobs_only(client: httpx.Client) -> None:
    repo = random_repo()
    image(client, repo)  # pushes blobs, no manifest
    assert_error(client.get(tags_path(repo)), 404, "NAME_UNKNOWN")


def walk_pages(client: httpx.Client, first: str) -> tuple[list[list[str]], list[str]]:
    """Follow ``Link: <...>; rel="next"`` from ``first``; return the pages and the URLs."""
    pages: list[list[str]] = []
    urls = [first]
    url: str | None = first
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        pages.append(response.json()["tags"])
        link = response.headers.get("Link")
        if link is None:
            url = None
        else:
            match = LINK_NEXT.match(link)
            assert match, link
            url = follow(client, match.group(1))
            urls.append(url)
        assert len(pages) < 100, "pagination does not end"
    return pages, urls


@deviates_on_distribution("n and last are ignored: every tag comes in one unsorted page")
def test_tags_list_pagination(client: httpx.Client) -> None:
    repo = random_repo()
    tags = [*(f"t{i:03d}" for i in range(31)), "latest"]
    push_tags(client, repo, tags)
    expected = sorted(tags)

    page = client.get(tags_path(repo), params={"n": 5})
    assert page.json()["tags"] == expected[:5]
    link = LINK_NEXT.match(page.headers["Link"])
    assert link, page.headers["Link"]
    query = parse_qs(urlsplit(link.group(1)).query)
    assert query == {"n": ["5"], "last": [expected[4]]}
    assert urlsplit(link.group(1)).path == tags_path(repo)

    pages, _urls = walk_pages(client, f"{tags_path(repo)}?n=5")
    assert [len(p) for p in pages] == [5, 5, 5, 5, 5, 5, 2]
    assert [t for p in pages for t in p] == expected

    after = client.get(tags_path(repo), params={"last": "t010"})
    assert after.json()["tags"] == [t for t in expected if t > "t010"]
    assert "Link" not in after.headers
    both = client.get(tags_path(repo), params={"n": 3, "last": "t010"})
    assert both.json()["tags"] == ["t011", "t012", "t013"]
    past_the_end = client.get(tags_path(repo), params={"last": "zzz"})
    assert past_the_end.status_code == 200
    assert past_the_end.json()["tags"] == []
    between = client.get(tags_path(repo), params={"n": 2, "last": "t0105"})  # not a tag
    assert between.json()["tags"] == ["t011", "t012"]


@deviates_on_distribution("n and last are ignored")
def test_tags_list_last_page_exactly_full_has_no_link(client: httpx.Client) -> None:
    repo = random_repo()
    push_tags(client, repo, ["a", "b", "c", "d"])
    pages, _urls = walk_pages(client, f"{tags_path(repo)}?n=2")
    assert pages == [["a", "b"], ["c", "d"]]
    whole = client.get(tags_path(repo), params={"n": 4})
    assert whole.json()["tags"] == ["a", "b", "c", "d"]
    assert "Link" not in whole.headers
    zero = client.get(tags_path(repo), params={"n": 0})
    assert zero.status_code == 200
    assert zero.json()["tags"] == []


@deviates_on_distribution("an invalid n is ignored (every tag is listed)")
@pytest.mark.parametrize("n", ["abc", "-1", "1.5", "0x10", "\u00b2", "\u0661"])
def test_tags_list_invalid_n(client: httpx.Client, n: str) -> None:
    repo = random_repo()
    push_tags(client, repo, ["latest"])
    assert_error(client.get(tags_path(repo), params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")
