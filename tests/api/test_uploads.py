"""Uploads: POST (start, monolithic, mount), PATCH, PUT, GET status, DELETE, ``_state``."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.support.api import (
    API_VERSION,
    API_VERSION_HEADER,
    TARGET,
    assert_error,
    blob_path,
    deviates_on_distribution,
    digest_of,
    error_codes,
    follow,
    patch_chunk,
    push_blob,
    random_repo,
    start_upload,
    upload_range,
    upload_state,
    upload_uuid,
    uploads_path,
    with_query,
    with_state,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

DATA = b"0123456789abcdefghij"  # 20 bytes


def assert_upload_response(
    client: httpx.Client, response: httpx.Response, status: int, repo: str, offset: int
) -> str:
    """Check a 202/204 upload response; return its Location resolved to an absolute URL."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.headers["Range"] == upload_range(offset)
    location = follow(client, response.headers["Location"])
    assert urlsplit(location).path.startswith(f"/v2/{repo}/blobs/uploads/")
    assert response.headers["Docker-Upload-UUID"] == upload_uuid(location)
    if status == 202:
        assert response.headers["Content-Length"] == "0"
    assert response.content == b""
    return location


def assert_blob_created(
    client: httpx.Client, response: httpx.Response, repo: str, data: bytes
) -> str:
    """Check a 201 for a new blob and that its Location serves ``data``; return the digest."""
    assert response.status_code == 201, (response.status_code, response.text)
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    digest = response.headers["Docker-Content-Digest"]
    assert digest == digest_of(data)
    location = follow(client, response.headers["Location"])
    assert urlsplit(location).path == blob_path(repo, digest)
    assert response.headers["Content-Length"] == "0"
    fetched = client.get(location)
    assert fetched.status_code == 200
    assert fetched.content == data
    return digest


def assert_blob_absent(client: httpx.Client, repo: str, *digests: str) -> None:
    for digest in digests:
        assert_error(client.head(blob_path(repo, digest)), 404, "BLOB_UNKNOWN")


def upload_with_first_chunk(client: httpx.Client, repo: str, chunk: bytes) -> str:
    location = start_upload(client, repo)
    response = patch_chunk(client, location, chunk, start=0)
    return assert_upload_response(client, response, 202, repo, len(chunk))


# -- POST ----------------------------------------------------------------------------------


def test_start_upload(client: httpx.Client) -> None:
    repo = random_repo()
    response = client.post(uploads_path(repo))
    location = assert_upload_response(client, response, 202, repo, 0)
    assert upload_uuid(location)


def test_start_upload_twice_gives_distinct_sessions(client: httpx.Client) -> None:
    repo = random_repo()
    first = start_upload(client, repo)
    second = start_upload(client, repo)
    assert upload_uuid(first) != upload_uuid(second)


def test_post_then_put_monolithic(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=digest_of(DATA)), content=DATA)
    assert_blob_created(client, response, repo, DATA)


@deviates_on_distribution(
    "POST ?digest=<d> with a body -> 202 (a new empty upload session with Location and "
    "'Range: 0-0'); the digest and body are ignored, the blob stays unknown"
)
def test_monolithic_post_with_digest(client: httpx.Client) -> None:
    repo = random_repo()
    response = client.post(
        uploads_path(repo),
        params={"digest": digest_of(DATA)},
        content=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_blob_created(client, response, repo, DATA)


@deviates_on_distribution("POST ?digest= is not implemented (202, body ignored)")
def test_monolithic_post_with_wrong_digest(client: httpx.Client) -> None:
    repo = random_repo()
    wrong = digest_of(b"something else")
    response = client.post(
        uploads_path(repo),
        params={"digest": wrong},
        content=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert_blob_absent(client, repo, wrong, digest_of(DATA))


# -- cross-repository mount ----------------------------------------------------------------


def test_mount_from_other_repository(client: httpx.Client) -> None:
    source, target = random_repo(), random_repo()
    digest = push_blob(client, source, DATA)
    response = client.post(uploads_path(target), params={"mount": digest, "from": source})
    assert_blob_created(client, response, target, DATA)
    head = client.head(blob_path(target, digest))
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(DATA))
    # The source keeps its blob.
    assert client.get(blob_path(source, digest)).content == DATA


def test_mount_when_target_already_has_blob(client: httpx.Client) -> None:
    source, target = random_repo(), random_repo()
    digest = push_blob(client, source, DATA)
    push_blob(client, target, DATA)
    response = client.post(uploads_path(target), params={"mount": digest, "from": source})
    assert_blob_created(client, response, target, DATA)


@pytest.mark.parametrize("case", ["source-lacks-blob", "source-unknown", "digest-unknown"])
def test_mount_falls_back_to_upload(client: httpx.Client, case: str) -> None:
    """202 and an ordinary upload session when the blob cannot be mounted."""
    source, target = random_repo(), random_repo()
    digest = digest_of(DATA)
    if case == "source-lacks-blob":
        push_blob(client, source, b"another blob")
        push_blob(client, random_repo(), DATA)  # in the registry, just not in `source`
    elif case == "digest-unknown":
        push_blob(client, source, b"another blob")
        digest = digest_of(b"in no repository " + os.urandom(8))
    response = client.post(uploads_path(target), params={"mount": digest, "from": source})
    location = assert_upload_response(client, response, 202, target, 0)
    assert_blob_absent(client, target, digest)
    # The session is a normal upload.
    response = client.put(with_query(location, digest=digest_of(DATA)), content=DATA)
    assert_blob_created(client, response, target, DATA)


@deviates_on_distribution(
    "POST ?mount=<d> without 'from' -> 202 (new upload session) even though the blob is "
    "in another repository of the registry"
)
def test_mount_without_from(client: httpx.Client) -> None:
    """OCI 1.1: with no ``from``, a registry that finds the blob may mount it (issue 2: do)."""
    source, target = random_repo(), random_repo()
    digest = push_blob(client, source, DATA)
    response = client.post(uploads_path(target), params={"mount": digest})
    assert_blob_created(client, response, target, DATA)


def test_mount_without_from_unknown_blob(client: httpx.Client) -> None:
    target = random_repo()
    digest = digest_of(b"in no repository " + os.urandom(8))
    response = client.post(uploads_path(target), params={"mount": digest})
    assert_upload_response(client, response, 202, target, 0)


# -- ?digest-algorithm= (OCI end-4c) ----------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha512", "sha256"])
def test_an_upload_started_for_an_algorithm_is_finished_with_it(
    client: httpx.Client, algorithm: str
) -> None:
    repo = random_repo()
    data = os.urandom(5000)
    response = client.post(uploads_path(repo), params={"digest-algorithm": algorithm})
    location = assert_upload_response(client, response, 202, repo, 0)
    for start in range(0, len(data), 2048):
        response = patch_chunk(client, location, data[start : start + 2048], start=start)
        location = assert_upload_response(client, response, 202, repo, min(start + 2048, 5000))
    digest = digest_of(data, algorithm)
    response = client.put(with_query(location, digest=digest))
    assert response.status_code == 201, response.text
    assert client.get(blob_path(repo, digest)).content == data


@deviates_on_distribution("docker-registry 2.8 ignores digest-algorithm: 202 for any")
@pytest.mark.parametrize("algorithm", ["md5", "unknown", "SHA256", "sha384", ""])
def test_an_unsupported_digest_algorithm_is_refused_before_any_data(
    client: httpx.Client, algorithm: str
) -> None:
    repo = random_repo()
    response = client.post(uploads_path(repo), params={"digest-algorithm": algorithm})
    assert_error(response, 400, "DIGEST_INVALID")
    # A monolithic POST with it stores nothing either.
    response = client.post(
        uploads_path(repo), params={"digest-algorithm": algorithm, "digest": digest_of(DATA)},
        content=DATA, headers={"Content-Type": "application/octet-stream"})
    assert_error(response, 400, "DIGEST_INVALID")
    assert_blob_absent(client, repo, digest_of(DATA))


@deviates_on_distribution("POST ?digest= and digest-algorithm are ignored (202)")
def test_a_monolithic_post_whose_digest_is_of_another_algorithm_is_refused(
    client: httpx.Client,
) -> None:
    repo = random_repo()
    response = client.post(
        uploads_path(repo), params={"digest-algorithm": "sha512", "digest": digest_of(DATA)},
        content=DATA, headers={"Content-Type": "application/octet-stream"})
    assert_error(response, 400, "DIGEST_INVALID")
    assert_blob_absent(client, repo, digest_of(DATA))
    response = client.post(
        uploads_path(repo), params={"digest-algorithm": "sha256", "digest": digest_of(DATA)},
        content=DATA, headers={"Content-Type": "application/octet-stream"})
    assert_blob_created(client, response, repo, DATA)


# -- PATCH ---------------------------------------------------------------------------------


def test_chunked_upload_with_content_range(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    offset = 0
    for chunk in (DATA[:7], DATA[7:8], DATA[8:]):
        response = patch_chunk(client, location, chunk, start=offset)
        offset += len(chunk)
        location = assert_upload_response(client, response, 202, repo, offset)
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)


def test_streamed_patch_without_content_range(client: httpx.Client) -> None:
    """docker and podman PATCH without Content-Range: each body is appended."""
    repo = random_repo()
    location = start_upload(client, repo)
    offset = 0
    for chunk in (DATA[:5], DATA[5:12], DATA[12:]):
        response = patch_chunk(client, location, chunk)
        offset += len(chunk)
        location = assert_upload_response(client, response, 202, repo, offset)
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)


def test_streamed_patch_with_chunked_transfer_encoding(client: httpx.Client) -> None:
    """A body of unknown length (Transfer-Encoding: chunked), as streaming clients send."""
    repo = random_repo()
    data = os.urandom(300_000)
    location = start_upload(client, repo)

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    response = client.patch(
        location, content=body(), headers={"Content-Type": "application/octet-stream"}
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    location = assert_upload_response(client, response, 202, repo, len(data))
    response = client.put(with_query(location, digest=digest_of(data)))
    assert_blob_created(client, response, repo, data)


def test_mixed_patch_styles(client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:4])
    response = patch_chunk(client, location, DATA[4:9])  # no Content-Range
    location = assert_upload_response(client, response, 202, repo, 9)
    response = patch_chunk(client, location, DATA[9:], start=9)
    location = assert_upload_response(client, response, 202, repo, len(DATA))
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)


_PATCH_RANGE_DEVIATION = (
    "PATCH ignores Content-Range and appends: at offset 5, 'Content-Range: 10-14' and "
    "'3-7' -> 202 'Range: 0-9'; resending '0-4' -> 202 'Range: 0-9'; a first chunk "
    "'5-9' -> 202 'Range: 0-4'"
)


@deviates_on_distribution(_PATCH_RANGE_DEVIATION)
@pytest.mark.parametrize(
    ("content_range", "body"),
    [
        pytest.param("10-14", b"KLMNO", id="gap-after-offset"),
        pytest.param("3-7", b"DEFGH", id="overlapping"),
        pytest.param("0-4", b"01234", id="repeated-first-chunk"),
        pytest.param("4-8", b"EFGHI", id="one-byte-overlap"),
        pytest.param("6-10", b"GHIJK", id="one-byte-gap"),
    ],
)
def test_out_of_order_chunk_gives_416(
    client: httpx.Client, content_range: str, body: bytes
) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:5])
    response = client.patch(
        location,
        content=body,
        headers={"Content-Type": "application/octet-stream", "Content-Range": content_range},
    )
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == upload_range(5)
    # Nothing was written: the upload is still at offset 5 and can go on.
    status = client.get(location)
    location = assert_upload_response(client, status, 204, repo, 5)
    response = patch_chunk(client, location, DATA[5:], start=5)
    location = assert_upload_response(client, response, 202, repo, len(DATA))
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)


@deviates_on_distribution(_PATCH_RANGE_DEVIATION)
def test_first_chunk_not_at_zero_gives_416(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    response = patch_chunk(client, location, DATA[:5], start=5)
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == upload_range(0)
    assert_upload_response(client, client.get(location), 204, repo, 0)


@deviates_on_distribution(
    "PATCH with 'Content-Range: 5-9' and a 3-byte body (Content-Length: 3) -> 202 'Range: 0-7'"
)
def test_chunk_length_not_matching_content_range_gives_400(client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:5])
    response = client.patch(
        location,
        content=DATA[5:8],
        headers={"Content-Type": "application/octet-stream", "Content-Range": "5-9"},
    )
    assert_error(response, 400, "SIZE_INVALID")
    assert_upload_response(client, client.get(location), 204, repo, 5)


@deviates_on_distribution(
    'PATCH with \'Content-Type: text/plain\' -> 500 {"errors":[{"code":"UNKNOWN",'
    '"message":"unknown error","detail":{}}]}'
)
def test_patch_with_other_content_type_is_not_a_server_error(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    response = client.patch(location, content=DATA, headers={"Content-Type": "text/plain"})
    assert response.status_code in (202, 400, 415), response.text


# -- PUT -----------------------------------------------------------------------------------


def test_put_with_final_chunk(client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:8])
    response = client.put(
        with_query(location, digest=digest_of(DATA)),
        content=DATA[8:],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_blob_created(client, response, repo, DATA)


def test_put_without_final_chunk(client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA)
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)


def test_put_empty_blob(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=digest_of(b"")))
    assert_blob_created(client, response, repo, b"")


def test_put_blob_that_already_exists(client: httpx.Client) -> None:
    repo = random_repo()
    push_blob(client, repo, DATA)
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=digest_of(DATA)), content=DATA)
    assert_blob_created(client, response, repo, DATA)


def test_put_without_digest(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    response = client.put(location, content=DATA)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_blob_absent(client, repo, digest_of(DATA))


def test_put_wrong_digest(client: httpx.Client) -> None:
    repo = random_repo()
    wrong = digest_of(b"not the data")
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=wrong), content=DATA)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_blob_absent(client, repo, wrong, digest_of(DATA))
    # The session cannot be used any more.
    response = client.get(location)
    assert response.status_code == 404
    assert {"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"} & set(error_codes(response))


@deviates_on_distribution(
    "after PATCH 'data' then PUT ?digest=<wrong> -> 400 DIGEST_INVALID, the upload survives: "
    "GET with the PATCH's Location -> 204 'Range: 0-3', and PUT ?digest=<right> -> 201; "
    "_uploads/<uuid>/data stays on disk"
)
def test_put_wrong_digest_removes_upload(registry: RegistryProcess, client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA)
    wrong = digest_of(b"not the data")
    response = client.put(with_query(location, digest=wrong))
    assert_error(response, 400, "DIGEST_INVALID")
    assert_blob_absent(client, repo, wrong, digest_of(DATA))
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_blob_absent(client, repo, digest_of(DATA))
    upload_dir = (
        registry.root
        / "docker/registry/v2/repositories"
        / repo
        / "_uploads"
        / upload_uuid(location)
    )
    assert not upload_dir.exists()


def test_completed_upload_is_gone(client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA)
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, location, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")


# -- GET status / DELETE -------------------------------------------------------------------


def test_upload_status(client: httpx.Client) -> None:
    repo = random_repo()
    location = start_upload(client, repo)
    assert_upload_response(client, client.get(location), 204, repo, 0)
    location = upload_with_first_chunk(client, repo, DATA[:5])
    response = client.get(location)
    location = assert_upload_response(client, response, 204, repo, 5)
    # The status Location is itself usable.
    response = patch_chunk(client, location, DATA[5:], start=5)
    location = assert_upload_response(client, response, 202, repo, len(DATA))
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_blob_created(client, response, repo, DATA)


def test_cancel_upload(client: httpx.Client) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA)
    response = client.delete(location)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, location, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_blob_absent(client, repo, digest_of(DATA))


# -- unknown uploads and _state ------------------------------------------------------------

UPLOAD_METHODS = ["GET", "PATCH", "PUT", "DELETE"]


def send(client: httpx.Client, method: str, location: str) -> httpx.Response:
    if method == "PATCH":
        return patch_chunk(client, location, b"x")
    if method == "PUT":
        return client.put(with_query(location, digest=digest_of(b"x")), content=b"x")
    return client.request(method, location)


@pytest.mark.parametrize("method", UPLOAD_METHODS)
def test_unknown_upload_uuid_is_404(client: httpx.Client, method: str) -> None:
    repo = random_repo()
    response = send(client, method, f"{client.base_url}{uploads_path(repo)}{uuid.uuid4()}")
    assert response.status_code == 404
    assert {"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"} & set(error_codes(response))


@deviates_on_distribution(
    "an unknown upload uuid (no _state) -> 404 "
    '{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid","detail":{}}]}'
)
@pytest.mark.parametrize("method", UPLOAD_METHODS)
def test_unknown_upload_uuid_is_blob_upload_unknown(client: httpx.Client, method: str) -> None:
    repo = random_repo()
    response = send(client, method, f"{client.base_url}{uploads_path(repo)}{uuid.uuid4()}")
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def tampered_location(client: httpx.Client, repo: str, location: str, variant: str) -> str:
    """A location for the upload at ``location`` whose ``_state`` is not its own."""
    state = upload_state(location)
    assert state, f"no _state in {location}"
    if variant == "flipped-hmac":
        return with_state(location, _flip(state, 3))
    if variant == "flipped-payload":
        return with_state(location, _flip(state, len(state) - 12))
    if variant == "garbage":
        return with_state(location, "garbage")
    if variant == "other-upload":
        other = start_upload(client, repo)
        return with_state(location, upload_state(other))
    if variant == "other-repository":
        other = start_upload(client, random_repo())
        return with_state(location, upload_state(other))
    if variant == "moved-to-other-repository":
        parts = urlsplit(location)
        path = parts.path.replace(f"/v2/{repo}/", f"/v2/{random_repo()}/", 1)
        return parts._replace(path=path).geturl()
    raise AssertionError(variant)


STATE_VARIANTS = [
    "flipped-hmac",
    "flipped-payload",
    "garbage",
    "other-upload",
    "other-repository",
    "moved-to-other-repository",
]


@pytest.mark.parametrize("method", UPLOAD_METHODS)
@pytest.mark.parametrize("variant", STATE_VARIANTS)
def test_tampered_state_is_rejected(client: httpx.Client, variant: str, method: str) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:5])
    bad = tampered_location(client, repo, location, variant)
    assert bad != location
    response = send(client, method, bad)
    assert_error(response, (400, 404), "BLOB_UPLOAD_INVALID")
    # The genuine upload is untouched and can be finished.
    location = assert_upload_response(client, client.get(location), 204, repo, 5)
    response = client.put(with_query(location, digest=digest_of(DATA)), content=DATA[5:])
    assert_blob_created(client, response, repo, DATA)


@deviates_on_distribution(
    "a tampered or foreign _state -> 404 (not 400) "
    '{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}'
)
@pytest.mark.parametrize("variant", STATE_VARIANTS)
def test_tampered_state_is_400(client: httpx.Client, variant: str) -> None:
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:5])
    for method in UPLOAD_METHODS:
        response = send(client, method, tampered_location(client, repo, location, variant))
        assert_error(response, 400, "BLOB_UPLOAD_INVALID")


def test_stale_state_does_not_destroy_upload(client: httpx.Client) -> None:
    """Replaying an older Location must not lose the upload (a retried request does that)."""
    repo = random_repo()
    first = upload_with_first_chunk(client, repo, DATA[:5])
    second = assert_upload_response(
        client, patch_chunk(client, first, DATA[5:10], start=5), 202, repo, 10
    )
    stale = client.get(first)
    assert stale.status_code in (204, 400, 404, 416)
    if stale.status_code == 204:  # from the token's view (5) or from storage (10)
        assert stale.headers["Range"] in (upload_range(5), upload_range(10))
    location = assert_upload_response(client, client.get(second), 204, repo, 10)
    response = client.put(with_query(location, digest=digest_of(DATA)), content=DATA[10:])
    assert_blob_created(client, response, repo, DATA)


# -- Location ------------------------------------------------------------------------------


def test_locations_are_relative_or_on_this_server(
    registry: RegistryProcess, client: httpx.Client
) -> None:
    repo = random_repo()
    response = client.post(uploads_path(repo))
    locations = [response.headers["Location"]]
    response = patch_chunk(client, follow(client, locations[-1]), DATA)
    locations.append(response.headers["Location"])
    response = client.get(follow(client, locations[-1]))
    locations.append(response.headers["Location"])
    response = client.put(with_query(follow(client, locations[-1]), digest=digest_of(DATA)))
    assert response.status_code == 201
    locations.append(response.headers["Location"])
    for location in locations:
        assert location.startswith(("/v2/", f"{registry.url}/v2/")), location


@pytest.mark.parametrize(
    ("headers", "base"),
    [
        pytest.param(
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"},
            "https://registry.example.com",
            id="proto-and-host",
        ),
        pytest.param(
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com:8443"},
            "https://registry.example.com:8443",
            id="host-with-port",
        ),
        pytest.param({"X-Forwarded-Proto": "https"}, "https://{hostport}", id="proto-only"),
        pytest.param(
            {"X-Forwarded-Host": "registry.example.com:8080"},
            "http://registry.example.com:8080",
            id="host-only",
        ),
        pytest.param(
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example.com, b.example.com"},
            "https://a.example.com",
            id="first-of-several-hosts",
        ),
        pytest.param({"Host": "other.example:1234"}, "http://other.example:1234", id="host"),
    ],
)
def test_absolute_locations_honour_forwarded_headers(
    registry: RegistryProcess, client: httpx.Client, headers: dict[str, str], base: str
) -> None:
    """With ``http.relativeurls`` false (the default), Locations are absolute and name the
    address the client used, as a reverse proxy reports it."""
    base = base.format(hostport=urlsplit(registry.url).netloc)
    repo = random_repo()

    def on_server(location: str) -> str:  # what the proxy would forward
        parts = urlsplit(location)
        return f"{registry.url}{parts.path}?{parts.query}" if parts.query else parts.path

    response = client.post(uploads_path(repo), headers=headers)
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.startswith(f"{base}/v2/{repo}/blobs/uploads/"), location

    response = client.patch(
        on_server(location),
        content=DATA,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.startswith(f"{base}/v2/{repo}/blobs/uploads/"), location

    response = client.get(on_server(location), headers=headers)
    assert response.status_code == 204
    assert response.headers["Location"].startswith(f"{base}/v2/{repo}/blobs/uploads/")

    response = client.put(with_query(on_server(location), digest=digest_of(DATA)), headers=headers)
    assert response.status_code == 201
    assert response.headers["Location"] == f"{base}/v2/{repo}/blobs/{digest_of(DATA)}"


def test_relative_urls(registry_factory: RegistryFactory, client_factory: ClientFactory) -> None:
    server = registry_factory(overrides={"http": {"relativeurls": True}})
    client = client_factory(server)
    repo = random_repo()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}
    response = client.post(uploads_path(repo), headers=headers)
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    response = patch_chunk(client, follow(client, response.headers["Location"]), DATA)
    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"/v2/{repo}/blobs/uploads/")
    location = follow(client, response.headers["Location"])
    response = client.put(with_query(location, digest=digest_of(DATA)))
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{repo}/blobs/{digest_of(DATA)}"
    assert client.get(follow(client, response.headers["Location"])).content == DATA


# -- several instances: the shared http.secret ---------------------------------------------


def test_upload_continues_on_another_instance(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """Two instances on one storage root with one secret serve the same upload in turns."""
    first = registry_factory()
    second = registry_factory(
        overrides={"storage": {"filesystem": {"rootdirectory": str(first.root)}}}
    )
    clients = [client_factory(first), client_factory(second)]
    repo = random_repo()
    data = os.urandom(10_000)
    location = start_upload(clients[0], repo)
    for index, start in enumerate(range(0, len(data), 2500)):
        instance = clients[index % 2]
        on_instance = f"{instance.base_url}{urlsplit(location).path}?{urlsplit(location).query}"
        response = patch_chunk(instance, on_instance, data[start : start + 2500], start=start)
        location = assert_upload_response(instance, response, 202, repo, start + 2500)
    on_second = f"{clients[1].base_url}{urlsplit(location).path}?{urlsplit(location).query}"
    response = clients[1].put(with_query(on_second, digest=digest_of(data)))
    assert_blob_created(clients[1], response, repo, data)
    assert clients[0].get(blob_path(repo, digest_of(data))).content == data


def test_state_signed_with_another_secret_is_rejected(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    first = registry_factory()
    second = registry_factory(
        overrides={"storage": {"filesystem": {"rootdirectory": str(first.root)}}},
        secret="some-other-secret",
    )
    one, other = client_factory(first), client_factory(second)
    repo = random_repo()
    location = upload_with_first_chunk(one, repo, DATA[:5])
    parts = urlsplit(location)
    response = other.get(f"{other.base_url}{parts.path}?{parts.query}")
    assert_error(response, (400, 404), "BLOB_UPLOAD_INVALID")
    # Its own instance still serves it.
    assert_upload_response(one, one.get(location), 204, repo, 5)


def test_without_secret_uploads_work_and_a_warning_is_logged(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory(secret=None)
    client = client_factory(server)
    repo = random_repo()
    location = upload_with_first_chunk(client, repo, DATA[:5])
    response = client.put(with_query(location, digest=digest_of(DATA)), content=DATA[5:])
    assert_blob_created(client, response, repo, DATA)
    warnings = [
        line
        for line in server.log_text().splitlines()
        if "secret" in line.lower() and "warn" in line.lower()
    ]
    assert warnings, server.log_tail()


# -- restarts, crashes, disconnects, workers -----------------------------------------------


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
def test_upload_survives_restart(
    registry_factory: RegistryFactory, client_factory: ClientFactory, hard: bool
) -> None:
    """Chunks before and after a restart (or a SIGKILL) make one blob."""
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo()
    data = os.urandom(256 * 1024)
    location = start_upload(client, repo)
    response = patch_chunk(client, location, data[:100_000], start=0)
    location = assert_upload_response(client, response, 202, repo, 100_000)

    server.restart(hard=hard)
    client.close()
    client = client_factory(server)

    location = assert_upload_response(client, client.get(location), 204, repo, 100_000)
    response = patch_chunk(client, location, data[100_000:], start=100_000)
    location = assert_upload_response(client, response, 202, repo, len(data))
    response = client.put(with_query(location, digest=digest_of(data)))
    assert_blob_created(client, response, repo, data)


@deviates_on_distribution(
    "after a client sends 500 of 1000 announced bytes and disconnects, the partial bytes stay "
    "in _uploads/<uuid>/data (600 bytes) and the last acknowledged Location (offset 100) gets "
    '404 {"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}; the '
    "upload is lost"
)
def test_client_disconnect_mid_patch(registry: RegistryProcess, client: httpx.Client) -> None:
    repo = random_repo()
    data = os.urandom(1100)
    location = upload_with_first_chunk(client, repo, data[:100])

    parts = urlsplit(location)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            (
                f"PATCH {parts.path}?{parts.query} HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Content-Range: 100-1099\r\n"
                "Content-Length: 1000\r\n\r\n"
            ).encode()
            + data[100:600]
        )
        time.sleep(0.5)  # let the server read the partial body
    time.sleep(0.5)  # and notice the disconnect

    # Nothing half-visible, and the upload resumes from where the server says it is.
    assert_blob_absent(client, repo, digest_of(data), digest_of(data[:100]))
    response = client.get(location)
    assert response.status_code == 204, response.text
    offset = int(response.headers["Range"].split("-")[1]) + 1
    assert 100 <= offset <= 600
    location = follow(client, response.headers["Location"])
    response = patch_chunk(client, location, data[offset:], start=offset)
    location = assert_upload_response(client, response, 202, repo, len(data))
    response = client.put(with_query(location, digest=digest_of(data)))
    assert_blob_created(client, response, repo, data)


@pytest.mark.skipif(TARGET == "distribution", reason="docker-registry has no --workers option")
def test_chunks_across_two_workers(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    """Every request on a new connection, so consecutive chunks land on either worker."""
    server = registry_factory(extra_args=["--workers", "2"])
    repo = random_repo()
    data = os.urandom(64 * 1024)
    location = start_upload(client_factory(server), repo)
    for start in range(0, len(data), 4096):
        with httpx.Client(timeout=60) as fresh:
            response = patch_chunk(fresh, location, data[start : start + 4096], start=start)
            assert response.status_code == 202, response.text
            assert response.headers["Range"] == upload_range(start + 4096)
            location = urljoin(location, response.headers["Location"])
    with httpx.Client(timeout=60) as fresh:
        response = fresh.put(with_query(location, digest=digest_of(data)))
        assert response.status_code == 201, response.text
    assert client_factory(server).get(blob_path(repo, digest_of(data))).content == data
