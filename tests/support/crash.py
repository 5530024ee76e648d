"""The crash campaign's client: concurrent pushes that go on while the registry is killed.

One round plans ``pushes`` pushes from a seed (what each sends, in which chunks, by
which method), runs them all at once against a real registry process over loopback,
and meanwhile SIGKILLs the registry at seeded points of progress (after the n-th
response, a few milliseconds into whatever is in flight) and starts it again on the
same storage. Each push behaves as a careful client does after a lost answer:

``monolithic``
    ``POST ?digest=`` with the body, or ``POST`` then ``PUT ?digest=`` with it; after a
    lost answer, the same again from the start.
``chunked``
    ``POST``, ``PATCH`` chunks with ``Content-Range``, ``PUT ?digest=`` with the tail;
    after a lost answer it asks where the upload stands (``GET`` its last Location) and
    goes on from the ``Range`` it is told.
``retry``
    The same, but a lost ``PATCH`` is sent again at once from the last Location it was
    given (the server may already have the chunk: a 416 then says where to go on).
``manifest``
    A config and layers (some shared by several pushes, in other repositories), then an
    OCI manifest ``PUT`` by tag, sent again until it is answered.

An upload whose final ``PUT`` lost its answer may be finished already: its status is
then 404 ``BLOB_UPLOAD_UNKNOWN`` and the push starts over. Any other answer is an
anomaly: a 5xx, no answer within a minute, an unknown upload after a lost ``PATCH``, a
``Range`` that goes backwards from an acknowledged offset, a 201 whose digest is not the
one sent. Every
201 is kept, so that :func:`verify` can pull it back once the killing has stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx
from tests.support.api import (
    blob_path,
    content_range,
    digest_of,
    error_codes,
    uploads_path,
    with_query,
)
from tests.support.data import blob
from tests.support.manifests import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor

__all__ = [
    "ROOMY",
    "SMALL",
    "Anomaly",
    "Created",
    "KillOne",
    "KillSwitch",
    "Push",
    "Round",
    "Sizes",
    "plan",
    "run_round",
    "verify",
]

KiB = 1 << 10
PushKind = Literal["monolithic", "chunked", "retry", "manifest"]
KINDS: tuple[PushKind, ...] = ("monolithic", "chunked", "retry", "manifest")
OCTETS = {"Content-Type": "application/octet-stream"}
# Layers several pushes share: the same digest committed concurrently into many repositories.
SHARED_LAYERS = 4
REPOSITORIES = 6
# Roughly how many responses a push needs (to spread the kill points over the round).
RESPONSES_PER_PUSH = 5
REQUEST_TIMEOUT = 60.0


class KillSwitch(Protocol):
    """The registry under test, as far as the campaign needs it."""

    @property
    def url(self) -> str: ...

    def kill(self) -> None: ...

    def start(self) -> None: ...


@dataclass(frozen=True)
class Push:
    """One planned push: its content, repository, chunking and method."""

    number: int
    kind: PushKind
    repo: str
    blobs: tuple[bytes, ...]
    """The blob to push; for a manifest, its config first, then its layers."""
    chunks: tuple[int, ...]
    """Chunk sizes, used in turn (all >= 2 bytes, so that a Range of ``0-0`` means 0)."""
    tail: int
    """Bytes sent with the final ``PUT`` (the rest goes in PATCHes)."""
    single_post: bool
    """Monolithic: ``POST ?digest=`` rather than ``POST`` + ``PUT``."""

    @property
    def tag(self) -> str:
        return f"push-{self.number}"

    def __str__(self) -> str:
        return f"push {self.number} ({self.kind} to {self.repo})"


@dataclass(frozen=True)
class Created:
    """A 201: a blob or a manifest (by tag) that must now pull back as ``body``."""

    repo: str
    digest: str
    body: bytes
    tag: str | None = None


@dataclass
class Round:
    """What one round did and saw."""

    seed: int
    kills: int = 0
    interrupted: int = 0
    resumed: int = 0
    unknown: int = 0
    responses: int = 0
    pushed: int = 0
    """Pushes that ended with their 201 (the others met an anomaly)."""
    created: list[Created] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"seed {self.seed}: {self.kills} kills, {self.responses} responses, "
            f"{self.interrupted} requests without an answer, {self.resumed} uploads resumed, "
            f"{self.unknown} reported unknown after a lost final PUT, "
            f"{self.pushed} pushes done, {len(self.created)} created (201), "
            f"{len(self.anomalies)} anomalies"
        )


class Anomaly(AssertionError):
    """An answer no correct registry gives (raised inside a push, recorded by the round)."""


class _Lost(Exception):
    """A request got no answer: the registry died under it, or was down."""


@dataclass(frozen=True)
class Sizes:
    """How big a round's blobs and chunks are drawn (a slow backend gets small ones)."""

    blob: int
    """Blobs are below this; with ``large``, one in ten goes past 1 MiB (the server's
    in-memory limit)."""
    chunk: int
    large: bool


ROOMY = Sizes(blob=400 * KiB, chunk=192 * KiB, large=True)
SMALL = Sizes(blob=48 * KiB, chunk=64 * KiB, large=False)


def plan(seed: int, pushes: int, prefix: str, sizes: Sizes = ROOMY) -> list[Push]:
    """``pushes`` pushes drawn from ``seed``: the same seed, the same pushes."""
    rng = random.Random(seed)
    repos = [f"{prefix}/r{i}" for i in range(REPOSITORIES)]
    shared = [blob(rng.randrange(2, sizes.blob // 4), seed=rng.getrandbits(32))
              for _ in range(SHARED_LAYERS)]
    planned = []
    for number in range(pushes):
        kind = KINDS[number % len(KINDS)]
        if kind == "manifest":
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "campaign": [seed, number]}).encode()
            own = blob(rng.randrange(2, sizes.blob // 2), seed=rng.getrandbits(32))
            blobs: tuple[bytes, ...] = (config, own, *rng.sample(shared, rng.randrange(0, 3)))
        else:
            if sizes.large and rng.random() < 0.1:
                size = rng.randrange(1024 * KiB, 1400 * KiB)
            else:
                size = rng.choice((rng.randrange(2, sizes.blob // 6), rng.randrange(2, sizes.blob)))
            blobs = (blob(size, seed=rng.getrandbits(32)),)
        chunks = tuple(rng.randrange(2, sizes.chunk) for _ in range(4))
        planned.append(Push(
            number=number, kind=kind, repo=rng.choice(repos), blobs=blobs, chunks=chunks,
            tail=rng.choice((0, 0, rng.randrange(2, sizes.chunk // 4))),
            single_post=rng.random() < 0.5,
        ))
    return planned


def _offset(response: httpx.Response) -> int:
    """The upload offset a ``Range: 0-<last>`` header reports."""
    value = response.headers.get("Range", "")
    first, _, last = value.partition("-")
    if first != "0" or not last.isdigit():
        raise Anomaly(f"{response.request.method} {response.request.url.path} -> "
                      f"{response.status_code} with Range {value!r}")
    return 0 if last == "0" else int(last) + 1


def _resumed_at(reported: int, acknowledged: int, lost: str) -> int:
    """The offset to go on from, which never lies behind one the registry acknowledged."""
    if reported < acknowledged:
        raise Anomaly(f"after a lost {lost}, the upload reports {reported} bytes "
                      f"where {acknowledged} were acknowledged")
    return reported


def _expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        raise Anomaly(f"{response.request.method} {response.request.url.path} -> "
                      f"{response.status_code} (expected {statuses}): {response.text[:500]}")
    return response


def _unknown_upload(response: httpx.Response) -> bool:
    if response.status_code != 404:
        return False
    try:
        return "BLOB_UPLOAD_UNKNOWN" in error_codes(response)
    except (AssertionError, ValueError):
        return False


class _Campaign:
    """One round in flight: the pushes, the killer, and what they saw."""

    def __init__(self, server: KillSwitch, http: httpx.AsyncClient, result: Round,
                 kill_points: list[int], kill_one: KillOne | None) -> None:
        self.server = server
        self.http = http
        self.result = result
        self.kill_points = kill_points
        self.kill_one = kill_one
        self.rng = random.Random(result.seed)
        self.up = asyncio.Event()
        self.up.set()
        self.finished = asyncio.Event()
        self.answered = asyncio.Event()
        """Set at each response and when the pushes are over (wakes the killer)."""
        self.down: BaseException | None = None
        """Why the registry could not be started again, if it could not."""

    # -- requests ----------------------------------------------------------------------

    async def send(self, method: str, url: str, content: bytes | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        """One request, once the registry is up; :class:`_Lost` if it gets no answer."""
        await self.up.wait()
        if self.down is not None:
            raise Anomaly(f"the registry did not start again: {self.down}")
        try:
            response = await self.http.request(method, url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise Anomaly(f"{method} {url}: no answer in {REQUEST_TIMEOUT:.0f}s ({exc!r})") \
                from None
        except httpx.TransportError as exc:
            self.result.interrupted += 1
            raise _Lost(repr(exc)) from None
        self.result.responses += 1
        self.answered.set()
        if response.status_code >= 500:
            raise Anomaly(f"{method} {response.request.url.path} -> {response.status_code}: "
                          f"{response.text[:500]}")
        return response

    # -- the killer --------------------------------------------------------------------

    async def kill_loop(self) -> None:
        """At each kill point (a count of responses), SIGKILL the registry and restart it."""
        for point in self.kill_points:
            while self.result.responses < point:
                if self.finished.is_set():
                    return
                self.answered.clear()
                await self.answered.wait()
            # A few milliseconds on: into whatever body is streaming in just then.
            await asyncio.sleep(self.rng.uniform(0, 0.02))
            if self.kill_one is not None and self.rng.random() < 0.5:
                # One worker only: the others go on serving, the supervisor replaces it.
                await asyncio.to_thread(self.kill_one, self.rng)
            else:
                self.up.clear()
                try:
                    await asyncio.to_thread(self.server.kill)
                    await asyncio.sleep(self.rng.uniform(0, 0.2))  # a closed port meanwhile
                    await asyncio.to_thread(self.server.start)
                except BaseException as exc:
                    self.down = exc  # the pushes end (with it) instead of waiting forever
                    raise
                finally:
                    self.up.set()
            self.result.kills += 1

    # -- pushes ------------------------------------------------------------------------

    async def push(self, job: Push) -> None:
        try:
            if job.kind == "manifest":
                await self.push_image(job)
            else:
                await self.push_blob(job, job.blobs[0], job.kind)
            self.result.pushed += 1
        except Anomaly as exc:
            self.result.anomalies.append(f"{job}: {exc}")

    async def push_blob(self, job: Push, data: bytes, kind: PushKind) -> str:
        digest = digest_of(data)
        while True:
            try:
                if kind in ("chunked", "retry"):
                    await self.chunked(job, data, digest, retry=kind == "retry")
                else:
                    await self.monolithic(job, data, digest)
                return digest
            except _Lost:
                continue  # a monolithic push starts over (a chunked one resumes inside)

    def created_blob(self, job: Push, response: httpx.Response, data: bytes) -> None:
        _expect(response, 201)
        digest = digest_of(data)
        if response.headers.get("Docker-Content-Digest") != digest:
            raise Anomaly(f"201 for {digest} names {response.headers.get('Docker-Content-Digest')}")
        self.result.created.append(Created(job.repo, digest, data))

    async def monolithic(self, job: Push, data: bytes, digest: str) -> None:
        if job.single_post:
            response = await self.send("POST", with_query(uploads_path(job.repo), digest=digest),
                                       data, OCTETS)
        else:
            started = _expect(await self.send("POST", uploads_path(job.repo)), 202)
            location = started.headers["Location"]
            response = await self.send("PUT", with_query(location, digest=digest), data, OCTETS)
        self.created_blob(job, response, data)

    async def start(self, job: Push) -> str:
        return str(_expect(await self.send("POST", uploads_path(job.repo)), 202)
                   .headers["Location"])

    async def status(self, location: str) -> tuple[str, int] | None:
        """Where an upload stands (its Location and offset), or None if it is unknown."""
        response = await self.send("GET", location)
        if _unknown_upload(response):
            return None
        _expect(response, 204)
        return response.headers["Location"], _offset(response)

    async def chunked(self, job: Push, data: bytes, digest: str, *, retry: bool) -> None:
        """PATCH chunks and PUT the tail, resuming after every lost answer."""
        sizes: Iterator[int] = itertools.cycle(job.chunks)
        end = len(data) - job.tail
        location: str | None = None
        offset = 0
        # The request that got no answer ("PATCH" or "PUT"); a lost status request
        # leaves it as it was, a lost POST is simply sent again.
        lost: str | None = None
        while True:
            try:
                if location is None:
                    location, offset = await self.start(job), 0
                elif lost is not None and not (retry and lost == "PATCH"):
                    status = await self.status(location)
                    if status is None:
                        if lost != "PUT":
                            raise Anomaly(f"upload {location} unknown after a lost {lost}")
                        self.result.unknown += 1  # maybe finished by the lost PUT: again
                        location, lost = None, None
                        continue
                    location, offset = status[0], _resumed_at(status[1], offset, lost)
                    self.result.resumed += 1
                lost = None
                while offset < end:
                    chunk = data[offset:offset + next(sizes)]
                    lost = "PATCH"
                    response = await self.send(
                        "PATCH", location, chunk,
                        {**OCTETS, "Content-Range": content_range(offset, chunk)},
                    )
                    lost = None
                    if response.status_code == 416 and retry:
                        # The lost PATCH had arrived: go on from where the upload is.
                        location = response.headers["Location"]
                        offset = _resumed_at(_offset(response), offset, "PATCH")
                        self.result.resumed += 1
                        continue
                    _expect(response, 202)
                    if _offset(response) != offset + len(chunk):
                        raise Anomaly(f"PATCH {offset}+{len(chunk)} -> {response.headers}")
                    location, offset = response.headers["Location"], offset + len(chunk)
                lost = "PUT"
                response = await self.send("PUT", with_query(location, digest=digest),
                                           data[offset:], OCTETS)
                lost = None
                self.created_blob(job, response, data)
                return
            except _Lost:
                continue

    async def push_image(self, job: Push) -> None:
        config, *layers = job.blobs
        await self.push_blob(job, config, "monolithic")
        for number, layer in enumerate(layers):
            await self.push_blob(job, layer, "retry" if number % 2 else "chunked")
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
        body = json.dumps(document, indent=2).encode()
        while True:
            try:
                response = await self.send("PUT", f"/v2/{job.repo}/manifests/{job.tag}", body,
                                           {"Content-Type": OCI_MANIFEST})
            except _Lost:
                continue  # a manifest PUT is idempotent: send it again
            _expect(response, 201)
            if response.headers.get("Docker-Content-Digest") != digest_of(body):
                raise Anomaly(f"manifest 201 names {response.headers.get('Docker-Content-Digest')}")
            self.result.created.append(Created(job.repo, digest_of(body), body, job.tag))
            return


class KillOne(Protocol):
    """SIGKILLs one worker process of a multi-worker registry (chosen with ``rng``)."""

    def __call__(self, rng: random.Random) -> None: ...


async def run_round(server: KillSwitch, seed: int, *, pushes: int, kills: int, prefix: str,
                    sizes: Sizes = ROOMY, kill_one: KillOne | None = None) -> Round:
    """Plan ``pushes`` from ``seed`` and run them all at once through ``kills`` crashes."""
    result = Round(seed)
    rng = random.Random(seed ^ 0x5EED)
    expected = pushes * RESPONSES_PER_PUSH
    points = sorted(rng.sample(range(1, int(expected * 0.8)), kills))
    limits = httpx.Limits(max_connections=pushes, max_keepalive_connections=pushes)
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT,
                                 limits=limits) as http:
        campaign = _Campaign(server, http, result, points, kill_one)
        killer = asyncio.create_task(campaign.kill_loop())
        try:
            await asyncio.gather(*(campaign.push(job) for job in plan(seed, pushes, prefix, sizes)))
        finally:
            campaign.finished.set()
            campaign.answered.set()
            await killer
    return result


async def verify(url: str, created: list[Created]) -> list[str]:
    """Pull back every 201 (blobs by digest, manifests by digest and by tag): what differs."""
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT,
                                 follow_redirects=True) as http:
        semaphore = asyncio.Semaphore(16)

        async def check(path: str, expected: bytes, headers: dict[str, str]) -> None:
            async with semaphore:
                response = await http.get(path, headers=headers)
            if response.status_code != 200 or response.content != expected:
                problems.append(f"GET {path} -> {response.status_code}, "
                                f"{len(response.content)} bytes (expected {len(expected)})")

        checks = []
        for item in created:
            if item.tag is None:
                checks.append(check(blob_path(item.repo, item.digest), item.body, {}))
            else:
                for reference in (item.digest, item.tag):
                    checks.append(check(f"/v2/{item.repo}/manifests/{reference}", item.body,
                                        {"Accept": OCI_MANIFEST}))
        await asyncio.gather(*checks)
    return problems
