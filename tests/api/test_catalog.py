"""``GET /v2/_catalog``: order, ``n``/``last`` and ``Link`` paging over many repositories.

The repositories are made by writing ``_layers`` link files straight into the storage
root of a registry of this module (fast), plus a few pushed through the API. The order
is distribution's: names compared with ``/`` below every other character, so ``a``,
``a/b``, ``a/b/c``, ``a-b`` (checked against docker-registry 2.8).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tests.support.api import (
    assert_error,
    deviates_on_distribution,
    follow,
    push_blob,
    start_upload,
)
from tests.support.index import reindex
from tests.support.manifests import image, put_manifest, repo_dir
from tests.support.servers import Kind, RegistryProcess

RegistryFactory = Callable[..., RegistryProcess]
LINK_NEXT = re.compile(r'^<([^>]+)>;\s*rel="next"$')

# Pushed through the API (one blob each) or written as link files.
PUSHED = ["a", "a/b", "a/b/c", "a-b", "a.b", "a_b", "b/c/d", "b/c/e", "z"]
BULK = [f"bulk/r{i:03d}" for i in range(240)] + [f"bulk/r{i:03d}/sub" for i in range(0, 240, 7)]
DEEP = [f"deep/x{i}/y/z" for i in range(10)]
ALL = PUSHED + BULK + DEEP


def catalog_key(name: str) -> str:
    return name.replace("/", "\x00")


EXPECTED = sorted(ALL, key=catalog_key)


def write_layer_link(root: Path, name: str) -> None:
    """``repositories/<name>/_layers/sha256/<hex>/link`` (the blob itself need not exist)."""
    hex_digest = hashlib.sha256(name.encode()).hexdigest()
    link = repo_dir(root, name) / "_layers" / "sha256" / hex_digest / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_bytes(f"sha256:{hex_digest}".encode())


@pytest.fixture(scope="module")
def catalog_registry(
    tmp_path_factory: pytest.TempPathFactory, target: Kind, registry_secret: str
) -> Iterator[RegistryProcess]:
    server = RegistryProcess(
        tmp_path_factory.mktemp("catalog"), kind=target, secret=registry_secret
    )
    for name in BULK + DEEP:
        write_layer_link(server.root, name)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for name in PUSHED:
                push_blob(http, name, name.encode())
            # Not repositories: an upload never finished, nothing linked.
            start_upload(http, "uploads/only")
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(catalog_registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=catalog_registry.url, timeout=60) as client:
        yield client


def get_catalog(client: httpx.Client, **params: object) -> httpx.Response:
    response = client.get("/v2/_catalog", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response


def walk(client: httpx.Client, n: int) -> list[list[str]]:
    pages: list[list[str]] = []
    url: str | None = f"/v2/_catalog?n={n}"
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()["repositories"]
        assert len(page) <= n
        pages.append(page)
        link = response.headers.get("Link")
        if link is None:
            url = None
        else:
            match = LINK_NEXT.match(link)
            assert match, link
            target = match.group(1)
            assert urlsplit(target).path == "/v2/_catalog"
            assert parse_qs(urlsplit(target).query) == {"n": [str(n)], "last": [page[-1]]}
            url = follow(client, target)
        assert len(pages) <= len(ALL) + 1, "pagination does not end"
    return pages


def test_catalog_lists_every_repository_in_order(http: httpx.Client) -> None:
    response = get_catalog(http, n=1000)
    assert response.json() == {"repositories": EXPECTED}
    assert "Link" not in response.headers


def test_catalog_order_puts_nested_names_first() -> None:
    """The expected order itself, as docker-registry 2.8 walks it (depth first)."""
    pushed = [name for name in EXPECTED if name in PUSHED]
    assert pushed == ["a", "a/b", "a/b/c", "a-b", "a.b", "a_b", "b/c/d", "b/c/e", "z"]
    assert EXPECTED.index("bulk/r007/sub") == EXPECTED.index("bulk/r007") + 1


@pytest.mark.parametrize("n", [1, 2, 3, 50, 100, 293])
def test_catalog_pages_follow_link_to_the_end(http: httpx.Client, n: int) -> None:
    pages = walk(http, n)
    assert [name for page in pages for name in page] == EXPECTED
    assert all(len(page) == n for page in pages[:-1])
    assert 0 < len(pages[-1]) <= n
    expected_pages = -(-len(EXPECTED) // n)
    assert len(pages) == expected_pages


def test_catalog_last(http: httpx.Client) -> None:
    for last in ("a", "a/b", "a-b", "bulk/r100", "bulk/r007/sub", "deep/x3/y/z", "y"):
        response = get_catalog(http, n=1000, last=last)
        expected = [name for name in EXPECTED if catalog_key(name) > catalog_key(last)]
        assert response.json()["repositories"] == expected, last
    # A `last` that names no repository starts after where it would sort.
    response = get_catalog(http, n=3, last="bulk/r0995")
    assert response.json()["repositories"] == ["bulk/r100", "bulk/r101", "bulk/r102"]
    assert get_catalog(http, last="zzz").json() == {"repositories": []}


def test_catalog_n_zero_is_empty(http: httpx.Client) -> None:
    response = get_catalog(http, n=0)
    assert response.json() == {"repositories": []}
    assert "Link" not in response.headers


def test_catalog_of_an_empty_registry(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    server = registry_factory()
    empty = client_factory(server)
    response = get_catalog(empty)
    assert response.json() == {"repositories": []}
    assert "Link" not in response.headers


def test_catalog_shows_a_new_repository(
    http: httpx.Client, catalog_registry: RegistryProcess
) -> None:
    """Listings read storage each time: a manifest pushed now is listed now."""
    name = "new/repository"
    put_manifest(http, name, "latest", image(http, name))
    try:
        names = get_catalog(http, n=1000).json()["repositories"]
        assert names == sorted([*EXPECTED, name], key=catalog_key)
    finally:
        # Keep the module's expectation intact for the other tests.
        shutil.rmtree(repo_dir(catalog_registry.root, name).parent)


@deviates_on_distribution("an invalid n is ignored and the default page is returned")
@pytest.mark.parametrize("n", ["abc", "-1", "2.5", "\u00b2", "\u0661"])
def test_catalog_invalid_n(http: httpx.Client, n: str) -> None:
    assert_error(http.get("/v2/_catalog", params={"n": n}), 400, "PAGINATION_NUMBER_INVALID")


@deviates_on_distribution(
    "a nested name whose component starts with a digit (a/0x) is walked before its "
    "parent (a), against its own `last` order, so a page after a/0x loses a"
)
def test_catalog_digit_components_keep_the_order(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    server = registry_factory()
    for name in ("a", "a/0x", "a/0x/y", "a/b", "a-b"):
        write_layer_link(server.root, name)
    reindex(server)
    client = client_factory(server)
    assert get_catalog(client).json()["repositories"] == ["a", "a/0x", "a/0x/y", "a/b", "a-b"]
    assert walk(client, 2) == [["a", "a/0x"], ["a/0x/y", "a/b"], ["a-b"]]


def small_catalog(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> httpx.Client:
    server = registry_factory(overrides={"catalog": {"maxentries": 5}})
    for name in "abcdefgh":
        write_layer_link(server.root, name)
    reindex(server)
    return client_factory(server)


def test_catalog_maxentries_is_the_default_page(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    client = small_catalog(registry_factory, client_factory)
    response = get_catalog(client)
    assert response.json()["repositories"] == ["a", "b", "c", "d", "e"]
    match = LINK_NEXT.match(response.headers["Link"])
    assert match, response.headers["Link"]
    assert parse_qs(urlsplit(match.group(1)).query) == {"n": ["5"], "last": ["e"]}
    assert walk(client, 5) == [["a", "b", "c", "d", "e"], ["f", "g", "h"]]
    assert walk(client, 3) == [["a", "b", "c"], ["d", "e", "f"], ["g", "h"]]


@deviates_on_distribution(
    'n above catalog.maxentries answers 400 PAGINATION_NUMBER_INVALID, detail {"n": <n>}'
)
def test_catalog_n_above_maxentries_is_capped(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    client = small_catalog(registry_factory, client_factory)
    response = get_catalog(client, n=100)
    assert response.json()["repositories"] == ["a", "b", "c", "d", "e"]
    match = LINK_NEXT.match(response.headers["Link"])
    assert match, response.headers["Link"]
    assert parse_qs(urlsplit(match.group(1)).query) == {"n": ["5"], "last": ["e"]}
