"""A blob's bytes always hash to its digest, whatever tokens an uploading client replays.

Issue 8: a client holding an earlier ``_state`` token of its own upload could rewind it
(PATCH with the older token and other bytes), and the final PUT trusted hash states
saved past the rewind, so a blob was committed under a digest its bytes do not have.
Each test plays one sequence of tokens, offsets, retries or concurrent requests against
a real server (one, or two instances on one storage root), then re-hashes every file of
the content store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
from tests.api.test_resilience import assert_blobs_consistent
from tests.support.api import (
    assert_error,
    blob_path,
    content_range,
    deviates_on_distribution,
    digest_of,
    follow,
    patch_chunk,
    random_repo,
    start_upload,
    upload_range,
    with_query,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

STALE = (
    "a write with a token older than the upload's progress is refused with 400 "
    "BLOB_UPLOAD_INVALID; dockyard answers 416 with the current Range and Location, "
    "as for any out-of-order chunk, so the client can resume"
)

RACE = (
    "every request racing on one offset with one token is accepted with 202 (writers "
    "of an upload are not serialised); dockyard lets one through and answers 416"
)

A, B, C, D = (os.urandom(300_000 + i) for i in range(4))


def accepted(client: httpx.Client, response: httpx.Response, offset: int) -> str:
    """A 202/204 at ``offset``: the next Location."""
    assert response.status_code in (202, 204), (response.status_code, response.text)
    assert response.headers["Range"] == upload_range(offset)
    return follow(client, response.headers["Location"])


def refused_at(client: httpx.Client, response: httpx.Response, offset: int) -> str:
    """A 416 naming the upload's real progress; its Location resumes from there."""
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == upload_range(offset)
    return follow(client, response.headers["Location"])


def finish(client: httpx.Client, location: str, data: bytes, last: bytes = b"") -> None:
    response = client.put(with_query(location, digest=digest_of(data)), content=last)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest_of(data)


def assert_unknown(client: httpx.Client, repo: str, data: bytes) -> None:
    assert client.head(blob_path(repo, digest_of(data))).status_code == 404


def two_chunks(client: httpx.Client, repo: str) -> tuple[str, str, str]:
    """An upload holding A then B: the Locations at offsets 0, |A| and |A|+|B|."""
    at_0 = start_upload(client, repo)
    at_a = accepted(client, patch_chunk(client, at_0, A, start=0), len(A))
    at_ab = accepted(client, patch_chunk(client, at_a, B, start=len(A)), len(A) + len(B))
    return at_0, at_a, at_ab


# -- one client replaying its own tokens -----------------------------------------------------



@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryProcess:
    """A registry of the test's own (overrides the session's): the tests check the whole
    storage, where other modules leave deliberate damage in the session registry."""
    return registry_factory()

@deviates_on_distribution(STALE)
@pytest.mark.parametrize("framing", ["content-range", "streamed"])
def test_rewind_with_an_older_token_is_refused(
    registry: RegistryProcess, client: httpx.Client, framing: str
) -> None:
    """The attack: PATCH other bytes with the token of offset |A|, then PUT H(A+B)."""
    repo = random_repo("rewind")
    _, at_a, at_ab = two_chunks(client, repo)
    start = len(A) if framing == "content-range" else None
    current = refused_at(client, patch_chunk(client, at_a, C, start=start), len(A) + len(B))
    # The final PUT with the old token and the other bytes is refused the same way.
    response = client.put(with_query(at_a, digest=digest_of(A + B)), content=C)
    refused_at(client, response, len(A) + len(B))
    response = client.put(with_query(at_a, digest=digest_of(A + C)), content=C)
    refused_at(client, response, len(A) + len(B))
    assert_unknown(client, repo, A + C)
    # The upload is intact: the newest token (and the 416's Location) still finish it.
    assert urlsplit(current).query == urlsplit(at_ab).query
    finish(client, at_ab, A + B + D, last=D)
    assert client.get(blob_path(repo, digest_of(A + B + D))).content == A + B + D
    assert assert_blobs_consistent(registry) >= 1


@pytest.mark.parametrize("framing", ["content-range", "streamed"])
def test_rewind_attack_stores_no_wrong_blob(
    registry: RegistryProcess, client: httpx.Client, framing: str
) -> None:
    """The attack played to the end, whatever each step answers: no blob lies.

    Longer bytes replace B from the token of offset |A|, leaving the hash state of
    offset |A|+|B| behind; then the digest of A+B is claimed with every token the
    client holds. On the server before the fix, the PUT with the token of |A|+|B|
    cut the data there and stored A+C[:|B|] under the digest of A+B.
    """
    repo = random_repo("rewind")
    _, at_a, at_ab = two_chunks(client, repo)
    c = os.urandom(len(B) + 1000)
    response = patch_chunk(client, at_a, c, start=len(A) if framing == "content-range" else None)
    tokens = [at_ab, at_a]  # a failed PUT cancels the upload: the likeliest first
    if "Location" in response.headers:
        tokens.append(follow(client, response.headers["Location"]))
    for location in tokens:
        client.put(with_query(location, digest=digest_of(A + B)))
    fetched = client.get(blob_path(repo, digest_of(A + B)))
    assert fetched.status_code in (200, 404)
    if fetched.status_code == 200:
        assert fetched.content == A + B
    assert assert_blobs_consistent(registry) >= 0


@deviates_on_distribution(STALE)
def test_newest_token_works_after_a_refused_rewind(
    registry: RegistryProcess, client: httpx.Client
) -> None:
    repo = random_repo("rewind")
    _, at_a, at_ab = two_chunks(client, repo)
    refused_at(client, patch_chunk(client, at_a, C, start=len(A)), len(A) + len(B))
    at_abc = accepted(client, patch_chunk(client, at_ab, C, start=len(A) + len(B)),
                      len(A) + len(B) + len(C))
    # And once the upload moved on, the token the rewind would have used is stale too.
    refused_at(client, patch_chunk(client, at_ab, D), len(A) + len(B) + len(C))
    finish(client, at_abc, A + B + C)
    assert assert_blobs_consistent(registry) >= 1


@deviates_on_distribution(STALE)
def test_retried_earlier_chunk_gets_416_and_resumes(
    registry: RegistryProcess, client: httpx.Client
) -> None:
    """A client that never saw the 202 sends its chunk again with the token it had."""
    repo = random_repo("retry")
    at_0, _, _ = two_chunks(client, repo)
    resume = refused_at(client, patch_chunk(client, at_0, A, start=0), len(A) + len(B))
    at_abc = accepted(client, patch_chunk(client, resume, C, start=len(A) + len(B)),
                      len(A) + len(B) + len(C))
    finish(client, at_abc, A + B + C)
    assert assert_blobs_consistent(registry) >= 1


@deviates_on_distribution("GET with a token older than the upload's progress answers 404 "
                          "BLOB_UPLOAD_INVALID")
def test_status_with_a_stale_token_reports_real_progress(
    registry: RegistryProcess, client: httpx.Client
) -> None:
    """GET on an old Location: the upload's progress and a Location that continues it."""
    repo = random_repo("status")
    at_0, _, _ = two_chunks(client, repo)
    location = accepted(client, client.get(at_0), len(A) + len(B))
    at_abc = accepted(client, patch_chunk(client, location, C, start=len(A) + len(B)),
                      len(A) + len(B) + len(C))
    finish(client, at_abc, A + B + C)
    assert assert_blobs_consistent(registry) >= 1


def test_patch_after_put_changes_nothing(registry: RegistryProcess, client: httpx.Client) -> None:
    repo = random_repo("late")
    at_0, at_a, at_ab = two_chunks(client, repo)
    finish(client, at_ab, A + B)
    for location, start in ((at_ab, len(A) + len(B)), (at_a, len(A)), (at_0, 0)):
        response = patch_chunk(client, location, C, start=start)
        assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
        response = client.put(with_query(location, digest=digest_of(A + C)), content=C)
        assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")
    assert client.get(blob_path(repo, digest_of(A + B))).content == A + B
    assert_unknown(client, repo, A + C)
    assert assert_blobs_consistent(registry) >= 1


# -- requests racing with one token ------------------------------------------------------------


def slow(data: bytes, pieces: int = 8, pause: float = 0.1) -> Iterator[bytes]:
    """``data`` in ``pieces``, with a pause before each: the request stays in flight."""
    step = -(-len(data) // pieces)
    for i in range(0, len(data), step):
        time.sleep(pause)
        yield data[i : i + step]


def race(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run ``calls`` at once, each on its own thread; their responses in order."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # re-raised below, on the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    responses: list[httpx.Response] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        responses.append(result)
    return responses


@pytest.fixture(params=["one instance", "two instances"])
def instances(
    request: pytest.FixtureRequest, registry_factory: RegistryFactory,
    client_factory: ClientFactory,
) -> tuple[RegistryProcess, list[httpx.Client]]:
    """One server, or two on one storage root (one secret): each racer may use either."""
    first = registry_factory()
    if request.param == "one instance":
        return first, [client_factory(first), client_factory(first)]
    second = registry_factory(
        overrides={"storage": {"filesystem": {"rootdirectory": str(first.root)}}}
    )
    return first, [client_factory(first), client_factory(second)]


def on(client: httpx.Client, location: str) -> str:
    parts = urlsplit(location)
    return f"{client.base_url}{parts.path}?{parts.query}"


def patcher(client: httpx.Client, location: str, data: bytes, start: int | None
            ) -> Callable[[], httpx.Response]:
    headers = {"Content-Type": "application/octet-stream"}
    if start is not None:
        headers["Content-Range"] = content_range(start, data)
    return lambda: client.patch(on(client, location), content=slow(data), headers=headers)


@deviates_on_distribution(RACE)
@pytest.mark.parametrize("framing", ["content-range", "streamed"])
def test_two_patches_with_one_token_at_once(
    instances: tuple[RegistryProcess, list[httpx.Client]], framing: str
) -> None:
    """One chunk wins; the other is refused; only the winner's bytes can be committed."""
    server, (one, other) = instances
    repo = random_repo("race")
    _, _, at_ab = two_chunks(one, repo)
    offset = len(A) + len(B)
    start = offset if framing == "content-range" else None
    for _ in range(5):  # racers that all saw each other are all refused: race again
        responses = race([patcher(one, at_ab, C, start), patcher(other, at_ab, D, start)])
        codes = sorted(r.status_code for r in responses)
        assert codes in ([202, 416], [416, 416]), [(r.status_code, r.text) for r in responses]
        if 202 in codes:
            break
    assert 202 in codes, "neither racer won in 5 rounds"
    winner, loser = (C, D) if responses[0].status_code == 202 else (D, C)
    location = follow(one, next(r for r in responses if r.status_code == 202).headers["Location"])
    # Committing the loser's bytes under their digest fails; the upload is then gone.
    response = one.put(with_query(on(one, location), digest=digest_of(A + B + loser)))
    assert_error(response, 400, "DIGEST_INVALID")
    assert_unknown(one, repo, A + B + loser)
    assert_unknown(one, repo, A + B + winner)
    assert assert_blobs_consistent(server) == 0


@deviates_on_distribution(RACE)
def test_patch_racing_the_final_put(
    instances: tuple[RegistryProcess, list[httpx.Client]],
) -> None:
    """A chunk and the closing PUT sent with one token: the blob is what was committed."""
    server, (one, other) = instances
    repo = random_repo("race")
    _, _, at_ab = two_chunks(one, repo)
    offset = len(A) + len(B)
    put = lambda: other.put(  # noqa: E731
        on(other, with_query(at_ab, digest=digest_of(A + B + D))), content=slow(D),
        headers={"Content-Type": "application/octet-stream"},
    )
    for _ in range(5):  # racers that all saw each other are all refused: race again
        patch, final = race([patcher(one, at_ab, C, offset), put])
        codes = sorted([patch.status_code, final.status_code])
        # 404: the PUT finished before the PATCH began.
        assert codes in ([201, 404], [201, 416], [202, 416], [416, 416]), (patch.text, final.text)
        if codes != [416, 416]:
            break
    assert codes != [416, 416], "neither racer won in 5 rounds"
    if final.status_code == 201:
        assert one.get(blob_path(repo, digest_of(A + B + D))).content == A + B + D
    else:  # the chunk won: the upload holds A+B+C, and D was not committed
        assert_unknown(one, repo, A + B + D)
        location = follow(one, patch.headers["Location"])
        finish(one, on(one, location), A + B + C)
    assert assert_blobs_consistent(server) >= 1


@deviates_on_distribution(RACE)
def test_many_racers_on_every_offset(
    instances: tuple[RegistryProcess, list[httpx.Client]],
) -> None:
    """Four racers per chunk, each with its own bytes, until five chunks are in.

    At most one racer wins an offset (racers that all saw each other may all be
    refused: that round is sent again); the others get 416.
    """
    server, clients = instances
    repo = random_repo("race")
    location = start_upload(clients[0], repo)
    committed = b""
    for _ in range(20):
        bodies = [os.urandom(50_000) for _ in range(4)]
        responses = race([
            patcher(clients[i % 2], location, body, len(committed))
            for i, body in enumerate(bodies)
        ])
        won = [i for i, r in enumerate(responses) if r.status_code == 202]
        assert len(won) <= 1, [(r.status_code, r.text) for r in responses]
        assert all(r.status_code == 416 for i, r in enumerate(responses) if i not in won)
        if won:
            committed += bodies[won[0]]
            location = follow(clients[0], responses[won[0]].headers["Location"])
        if len(committed) == 5 * 50_000:
            break
    assert len(committed) == 5 * 50_000, "no racer won some offset in 20 rounds"
    finish(clients[1], on(clients[1], location), committed)
    assert clients[0].get(blob_path(repo, digest_of(committed))).content == committed
    assert assert_blobs_consistent(server) >= 1
