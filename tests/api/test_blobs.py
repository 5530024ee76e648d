"""Blobs: HEAD, GET (full, single range, conditional), DELETE; digest and name validation."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from tests.support.api import (
    API_VERSION,
    API_VERSION_HEADER,
    RawResponse,
    assert_error,
    blob_path,
    deviates_on_distribution,
    digest_of,
    follow,
    push_blob,
    random_repo,
    raw_request,
    start_upload,
    with_query,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

DATA = b"hello world, this is a small blob"


def assert_blob_headers(response: httpx.Response, digest: str, length: int) -> None:
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["ETag"] == f'"{digest}"'
    assert response.headers["Cache-Control"] == "max-age=31536000"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(length)


# -- HEAD / GET ----------------------------------------------------------------------------


def test_head_blob(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.head(blob_path(repo, digest))
    assert response.status_code == 200
    assert_blob_headers(response, digest, len(DATA))
    assert response.content == b""


def test_get_blob(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.get(blob_path(repo, digest))
    assert response.status_code == 200
    assert_blob_headers(response, digest, len(DATA))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.content == DATA


def test_get_empty_blob(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, b"")
    assert digest == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    response = client.get(blob_path(repo, digest))
    assert response.status_code == 200
    assert_blob_headers(response, digest, 0)
    assert response.content == b""


def test_get_blob_larger_than_a_buffer(client: httpx.Client) -> None:
    """A few MiB, so that streaming code paths (several reads/writes) are exercised."""
    repo = random_repo()
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = push_blob(client, repo, data)
    response = client.get(blob_path(repo, digest))
    assert response.status_code == 200
    assert_blob_headers(response, digest, len(data))
    assert digest_of(response.content) == digest


@pytest.mark.parametrize("size", [(64 << 10) - 1, 64 << 10, (64 << 10) + 1])
def test_get_blob_around_the_small_body_size(client: httpx.Client, size: int) -> None:
    """Up to 64 KiB a body is read in one go and written by the event loop, above it
    goes out by sendfile: both give the whole blob, and a range in either way."""
    repo = random_repo()
    data = os.urandom(size)
    digest = push_blob(client, repo, data)
    response = client.get(blob_path(repo, digest))
    assert response.status_code == 200
    assert_blob_headers(response, digest, size)
    assert response.content == data
    response = client.get(blob_path(repo, digest), headers={"Range": "bytes=7-"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 7-{size - 1}/{size}"
    assert response.content == data[7:]


def test_get_blob_partly_out_of_the_page_cache(
    registry: RegistryProcess, client: httpx.Client
) -> None:
    """dockyard sends the pages in the page cache from the event loop and hands the rest
    to a thread (which may wait for the disk): a blob whose tail was dropped from the
    cache comes whole, and so does a range that starts in the cached part."""
    repo = random_repo()
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = push_blob(client, repo, data)
    hexpart = digest.split(":")[1]
    path = registry.root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
    for headers, expected in (({}, data), ({"Range": "bytes=1000-"}, data[1000:])):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # only clean pages can be dropped
            os.posix_fadvise(fd, 1 << 20, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        response = client.get(blob_path(repo, digest), headers=headers)
        assert response.status_code == (206 if headers else 200)
        assert response.content == expected


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=2-5", 2, 5),
        ("bytes=0-0", 0, 0),
        ("bytes=0-32", 0, 32),  # the whole blob as a range
        ("bytes=6-", 6, 32),  # open-ended
        ("bytes=-4", 29, 32),  # suffix
        ("bytes=10-1000", 10, 32),  # end clamped to the size
    ],
)
def test_get_blob_single_range(
    client: httpx.Client, range_header: str, start: int, end: int
) -> None:
    assert len(DATA) == 33
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.get(blob_path(repo, digest), headers={"Range": range_header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["ETag"] == f'"{digest}"'
    assert response.content == DATA[start : end + 1]


@pytest.mark.parametrize("range_header", ["bytes=33-", "bytes=100-200"])
def test_get_blob_unsatisfiable_range(
    registry: RegistryProcess, client: httpx.Client, range_header: str
) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    # Raw socket: distribution sends a 416 whose body does not match its Content-Length.
    response = raw_request(
        registry.url, "GET", blob_path(repo, digest), headers={"Range": range_header}
    )
    assert response.status_code == 416
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"


@deviates_on_distribution(
    "a 416 for an unsatisfiable range announces 'Content-Length: <blob size>' but its body is "
    "the 33-byte text 'invalid range: failed to overlap\\n' (Content-Type: text/plain): for an "
    "11-byte blob no body byte is sent and the connection is closed (httpx: 'peer closed "
    "connection without sending complete message body (received 0 bytes, expected 11)')"
)
@pytest.mark.parametrize("size", [11, 1000])
def test_unsatisfiable_range_response_is_well_formed(
    registry: RegistryProcess, client: httpx.Client, size: int
) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, os.urandom(size))
    response = raw_request(
        registry.url, "GET", blob_path(repo, digest), headers={"Range": f"bytes={size + 5}-"}
    )
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert response.complete, "body shorter than the announced Content-Length"
    # And an ordinary client can read it to the end.
    with client.stream("GET", blob_path(repo, digest), headers={"Range": f"bytes={size}-"}) as r:
        assert r.status_code == 416
        r.read()


def test_head_blob_with_range(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.head(blob_path(repo, digest), headers={"Range": "bytes=2-5"})
    assert response.status_code in (200, 206)
    assert response.content == b""
    if response.status_code == 206:
        assert response.headers["Content-Range"] == f"bytes 2-5/{len(DATA)}"
        assert response.headers["Content-Length"] == "4"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_gives_304(client: httpx.Client, method: str) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.request(
        method, blob_path(repo, digest), headers={"If-None-Match": f'"{digest}"'}
    )
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == f'"{digest}"'
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers[API_VERSION_HEADER] == API_VERSION


def test_if_none_match_other_etag_gives_200(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    other = digest_of(b"something else")
    response = client.get(blob_path(repo, digest), headers={"If-None-Match": f'"{other}"'})
    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_unknown_blob(client: httpx.Client, method: str) -> None:
    response = client.request(method, blob_path(random_repo(), digest_of(b"never pushed")))
    assert_error(response, 404, "BLOB_UNKNOWN")
    if method == "HEAD":
        assert response.content == b""


def test_blob_is_scoped_to_its_repository(client: httpx.Client) -> None:
    """A blob pushed to one repository is not visible through another."""
    repo, other = random_repo(), random_repo()
    digest = push_blob(client, repo, DATA)
    assert_error(client.get(blob_path(other, digest)), 404, "BLOB_UNKNOWN")
    assert_error(client.head(blob_path(other, digest)), 404, "BLOB_UNKNOWN")


def test_content_type_is_octet_stream(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, b'{"not": "served as json"}')
    response = client.get(blob_path(repo, digest))
    assert response.headers["Content-Type"] == "application/octet-stream"


# -- sha512 --------------------------------------------------------------------------------


def test_sha512_blob_upload_and_fetch(client: httpx.Client) -> None:
    """A blob pushed under its sha512 digest is fetched by that digest.

    Docker-Content-Digest may be the canonical (sha256) digest of the same bytes, as the
    original documents ("may differ from the provided digest"); both are accepted.
    """
    repo = random_repo()
    data = b"a sha512 blob " * 10
    digest = digest_of(data, "sha512")
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=digest), content=data)
    assert response.status_code == 201, response.text
    canonical = response.headers["Docker-Content-Digest"]
    assert canonical in (digest, digest_of(data))

    for method in ("HEAD", "GET"):
        response = client.request(method, blob_path(repo, digest))
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["Docker-Content-Digest"] in (digest, digest_of(data))
        assert response.headers["ETag"] == f'"{response.headers["Docker-Content-Digest"]}"'
    assert response.content == data
    # The reported digest names the same content.
    assert client.get(blob_path(repo, canonical)).content == data


def test_sha512_chunked_upload(client: httpx.Client) -> None:
    repo = random_repo()
    data = os.urandom(5000)
    digest = digest_of(data, "sha512")
    location = start_upload(client, repo)
    for start in range(0, len(data), 2048):
        chunk = data[start : start + 2048]
        response = client.patch(
            location,
            content=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + len(chunk) - 1}",
            },
        )
        assert response.status_code == 202, response.text
        location = follow(client, response.headers["Location"])
    response = client.put(with_query(location, digest=digest))
    assert response.status_code == 201, response.text
    assert client.get(blob_path(repo, digest)).content == data


# -- DELETE --------------------------------------------------------------------------------


def test_delete_blob(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.delete(blob_path(repo, digest))
    assert response.status_code == 202
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.content == b""
    assert_error(client.get(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")
    assert_error(client.head(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")


def test_delete_unknown_blob(client: httpx.Client) -> None:
    response = client.delete(blob_path(random_repo(), digest_of(b"never pushed")))
    assert_error(response, 404, "BLOB_UNKNOWN")


def test_delete_blob_only_unlinks_that_repository(client: httpx.Client) -> None:
    repo, other = random_repo(), random_repo()
    digest = push_blob(client, repo, DATA)
    assert push_blob(client, other, DATA) == digest
    assert client.delete(blob_path(repo, digest)).status_code == 202
    assert_error(client.get(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")
    response = client.get(blob_path(other, digest))
    assert response.status_code == 200
    assert response.content == DATA


def test_blob_can_be_pushed_again_after_delete(client: httpx.Client) -> None:
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    assert client.delete(blob_path(repo, digest)).status_code == 202
    assert push_blob(client, repo, DATA) == digest
    assert client.get(blob_path(repo, digest)).content == DATA


def test_delete_blob_when_disabled(
    registry_factory: Callable[..., RegistryProcess],
    client_factory: Callable[[RegistryProcess], httpx.Client],
) -> None:
    server = registry_factory(overrides={"storage": {"delete": {"enabled": False}}})
    client = client_factory(server)
    repo = random_repo()
    digest = push_blob(client, repo, DATA)
    response = client.delete(blob_path(repo, digest))
    assert_error(response, 405, "UNSUPPORTED")
    assert client.get(blob_path(repo, digest)).content == DATA


# -- malformed digests ---------------------------------------------------------------------

_SHA256_OF_X = digest_of(b"x").split(":")[1]

BAD_DIGESTS = [
    pytest.param("sha256:xyz", id="not-hex"),
    pytest.param("md5:9dd4e461268c8034f5c8564e155c67a6", id="md5"),
    pytest.param("sha256:" + "a" * 63, id="sha256-63-chars"),
    pytest.param("sha256:" + "a" * 65, id="sha256-65-chars"),
    pytest.param("sha256:" + _SHA256_OF_X.upper(), id="uppercase-hex"),
    pytest.param("sha512:" + "a" * 64, id="sha512-with-sha256-length"),
]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_malformed_digest_on_blob(client: httpx.Client, method: str, digest: str) -> None:
    response = client.request(method, blob_path(random_repo(), digest))
    assert_error(response, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_malformed_digest_on_put(client: httpx.Client, digest: str) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=digest), content=b"x")
    assert_error(response, 400, "DIGEST_INVALID")


# -- invalid repository names --------------------------------------------------------------

_D = digest_of(b"x")


def _long_name() -> str:
    return "a" * 128 + "/" + "b" * 127  # 256 characters


INVALID_NAMES = [
    pytest.param("UPPER/case", id="uppercase"),
    pytest.param("a//b", id="empty-component"),
    pytest.param("-lead", id="leading-dash"),
    pytest.param("foo/bar-", id="trailing-dash"),
    pytest.param("a..b", id="double-dot-separator"),
    pytest.param("../etc", id="dotdot"),
    pytest.param("%2e%2e/x", id="encoded-dotdot"),
    pytest.param("%2E%2E/x", id="encoded-dotdot-upper"),
    pytest.param("a/%2e%2e/b", id="encoded-dotdot-inside"),
    pytest.param("a/../../../../../../../../{marker}", id="deep-dotdot"),
    pytest.param("a/%2e%2e%2f%2e%2e%2f%2e%2e%2f{marker}", id="encoded-slashes"),
    pytest.param(_long_name(), id="256-chars"),
]

# The same names sent to upload and blob endpoints.
NAME_REQUESTS = [
    ("GET", "/v2/{name}/blobs/" + _D),
    ("HEAD", "/v2/{name}/blobs/" + _D),
    ("DELETE", "/v2/{name}/blobs/" + _D),
    ("POST", "/v2/{name}/blobs/uploads/"),
    ("POST", "/v2/{name}/blobs/uploads/?digest=" + _D),
    ("PUT", "/v2/{name}/blobs/uploads/00000000-0000-0000-0000-000000000000?digest=" + _D),
    ("PATCH", "/v2/{name}/blobs/uploads/00000000-0000-0000-0000-000000000000"),
]


def _snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def _send_invalid_name(registry: RegistryProcess, name: str, marker: str) -> list[RawResponse]:
    responses = []
    for method, template in NAME_REQUESTS:
        target = template.format(name=name.format(marker=marker))
        body = b"x" if method in ("POST", "PUT", "PATCH") else b""
        responses.append(raw_request(registry.url, method, target, body=body))
    return responses


# Distribution answers these two in a way the storage check below must not accept.
_NEVER_REACHES_STORAGE = [
    pytest.param(
        "UPPER/case",
        id="uppercase",
        marks=deviates_on_distribution(
            "'UPPER/case' parses as domain 'UPPER' + path 'case': POST -> 202 with Location "
            "/v2/UPPER/case/blobs/uploads/<uuid> and repositories/UPPER/case/_uploads/ created"
        ),
    ),
    *[p for p in INVALID_NAMES if p.id not in ("uppercase", "256-chars")],
    pytest.param(
        _long_name(),
        id="256-chars",
        marks=deviates_on_distribution(
            'a 256-character name -> 500 {"errors":[{"code":"UNKNOWN",...,"detail":'
            '{"Name":"aaa...","Reason":{}}}]}'
        ),
    ),
]


@pytest.mark.parametrize("name", _NEVER_REACHES_STORAGE)
def test_invalid_name_never_reaches_storage(
    registry: RegistryProcess, tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    """Whatever the status, an invalid name creates nothing, inside or outside the root.

    Sent over a raw socket so that ``..`` and ``%2e%2e`` reach the server unnormalised.
    """
    marker = f"escape-{os.urandom(6).hex()}"
    base = tmp_path_factory.getbasetemp()
    before = _snapshot(base)
    responses = _send_invalid_name(registry, name, marker)
    for (method, _), response in zip(NAME_REQUESTS, responses, strict=True):
        status = response.status_code
        assert response.headers[API_VERSION_HEADER] == API_VERSION, (method, name)
        assert not 200 <= status < 300, (method, name, status)
        assert status < 500, (method, name, status, response.text)
    after = _snapshot(base)
    created = sorted(after - before)
    assert created == [], f"{name!r} created {created}"
    # Nothing escaped the temp dirs either: no ancestor of the root got the marker.
    repositories = registry.root / "docker" / "registry" / "v2" / "repositories"
    for ancestor in [repositories, *repositories.parents]:
        assert not (ancestor / marker).exists(), ancestor / marker


@deviates_on_distribution(
    "no NAME_INVALID for blob/upload routes: 'a//b', '../etc', '%2e%2e/x', 'a/%2e%2e/b' get "
    "301 Moved Permanently to the cleaned path (Location: /etc/blobs/...); '-lead', "
    "'foo/bar-', 'a..b' get 404 text/plain '404 page not found'; 'UPPER/case' is taken as "
    "a domain component (POST -> 202 and _uploads/ created under repositories/UPPER/case); "
    "a 256-character name -> 500 UNKNOWN"
)
@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_name_gets_name_invalid(registry: RegistryProcess, name: str) -> None:
    marker = f"escape-{os.urandom(6).hex()}"
    for response in _send_invalid_name(registry, name, marker):
        assert_error(response, 400, "NAME_INVALID")


def test_valid_name_grammar_edge_cases(client: httpx.Client) -> None:
    """Names at the edges of the grammar are accepted (so invalid-name tests are not
    passing for the wrong reason)."""
    suffix = os.urandom(4).hex()
    names = [
        f"a{suffix}",
        f"a__b/{suffix}",
        f"a-b--c/d.e_f/{suffix}",
        f"x{suffix}/" + "y" * (255 - len(suffix) - 2),  # exactly 255 characters
    ]
    assert len(names[-1]) == 255
    for name in names:
        digest = push_blob(client, name, DATA)
        assert client.get(blob_path(name, digest)).content == DATA
