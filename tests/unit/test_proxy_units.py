"""The pull-through cache's parts without a server: config, challenges, routing, the
schedule format, and how a fill streams to its readers."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard.config import ConfigError, load_config
from dockyard.digest import Digest
from dockyard.errors import BackendUnavailable, DigestInvalid
from dockyard.proxy import fill as fill_module
from dockyard.proxy.auth import parse_challenge
from dockyard.proxy.fill import HOLD_BACK, BlobFill, verify
from dockyard.proxy.remote import RemoteRegistry
from dockyard.proxy.routes import Upstream, route
from dockyard.proxy.scheduler import BLOB, MANIFEST, Entry, TTLScheduler
from dockyard.storage.drivers.base import PathNotFound
from dockyard.storage.drivers.inmemory import InMemoryDriver

H = "version: 0.1\nstorage: inmemory\nhttp: {secret: s}\n"


def load(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "config.yml"
    path.write_text(H + textwrap.dedent(text))
    return load_config(path, {})


def test_upstreams_are_read_with_their_defaults(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        """\
        proxy:
          upstreams:
            - prefix: hub
              remoteurl: https://registry-1.docker.io
              namespace: docker.io
              username: u
              password: p
              ttl: 24h
            - prefix: /ghcr/
              remoteurl: https://ghcr.io
        """,
    )
    assert warnings == []
    upstreams = config.proxy.upstreams  # type: ignore[attr-defined]
    assert [(u.prefix, u.remote_url, u.namespace, u.ttl) for u in upstreams] == [
        ("hub", "https://registry-1.docker.io", "docker.io", 24 * 3600.0),
        ("ghcr", "https://ghcr.io", "", 168 * 3600.0),
    ]
    assert (upstreams[0].username, upstreams[0].password) == ("u", "p")
    assert config.proxy.enabled  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "proxy: {remoteurl: 'https://a.example', upstreams: [{prefix: a, remoteurl: "
            "'https://b.example'}]}\n",
            "proxy.upstreams: cannot be combined with proxy.remoteurl",
        ),
        (
            "proxy: {upstreams: [{remoteurl: 'https://b.example'}]}\n",
            "proxy.upstreams[0].prefix: required",
        ),
        ("proxy: {upstreams: [{prefix: hub}]}\n", "proxy.upstreams[0].remoteurl: required"),
        (
            "proxy: {upstreams: [{prefix: 'Hub!', remoteurl: 'https://b.example'}]}\n",
            "is not a repository name prefix",
        ),
        (
            "proxy: {upstreams: [{prefix: a, remoteurl: 'https://b.example'},"
            " {prefix: a/b, remoteurl: 'https://c.example'}]}\n",
            "overlaps the prefix 'a'",
        ),
        (
            "proxy: {upstreams: [{prefix: a, remoteurl: 'https://b.example', namespace: x},"
            " {prefix: b, remoteurl: 'https://c.example', namespace: x}]}\n",
            "two upstreams have the same namespace",
        ),
        (
            "proxy: {upstreams: [{prefix: a, remoteurl: 'https://b.example', ttl: soon}]}\n",
            "proxy.upstreams[0].ttl: invalid duration 'soon'",
        ),
    ],
)
def test_bad_upstreams_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert expected in str(info.value)


def test_unknown_upstream_key_is_a_warning(tmp_path: Path) -> None:
    _, warnings = load(
        tmp_path, "proxy: {upstreams: [{prefix: a, remoteurl: 'https://b.example', x: 1}]}\n"
    )
    assert any("proxy.upstreams[0].x" in w for w in warnings), warnings


def test_challenges_are_parsed_like_distributions() -> None:
    bearer = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    basic = parse_challenge('Basic realm="upstream \\"quoted\\""')
    assert basic is not None and basic.scheme == "basic"
    assert basic.params == {"realm": 'upstream "quoted"'}
    assert parse_challenge("") is None


def test_prefixes_route_and_docker_hub_gets_library() -> None:
    hub = Upstream("hub", RemoteRegistry("https://registry-1.docker.io"), 0.0, "docker.io")
    ghcr = Upstream("ghcr", RemoteRegistry("https://ghcr.io"), 0.0)
    everything = Upstream("", RemoteRegistry("https://mirror.example"), 0.0)
    assert route([hub, ghcr], "hub/alpine") is hub
    assert route([hub, ghcr], "ghcr/org/tool") is ghcr
    assert route([hub, ghcr], "hubble/app") is None  # a prefix is a whole component
    assert route([hub, ghcr], "mine/app") is None
    assert hub.remote_name("hub/alpine") == "library/alpine"
    assert hub.remote_name("hub/bitnami/redis") == "bitnami/redis"
    assert ghcr.remote_name("ghcr/tool") == "tool"
    assert route([everything], "anything/at/all") is everything
    assert everything.remote_name("a/b") == "a/b"
    # A mirror of the Hub (another cache) is known by containerd's namespace for it.
    hub_mirror = Upstream("hub", RemoteRegistry("http://mirror.example:5000"), 0.0, "docker.io")
    assert hub_mirror.remote_name("hub/alpine") == "library/alpine"


def test_schedule_entries_round_trip_distributions_json() -> None:
    # As distribution's Go time.Time marshals it: RFC 3339 with nanoseconds.
    go = {
        "Key": "lib/app@sha256:" + "a" * 64,
        "ExpiryData": "2026-12-11T15:04:05.123456789Z",
        "EntryType": 1,
    }
    entry = Entry.from_json(go)
    assert entry is not None
    assert (entry.repository, entry.kind) == ("lib/app", MANIFEST)
    assert entry.digest == Digest.parse("sha256:" + "a" * 64)
    assert entry.expiry == datetime(2026, 12, 11, 15, 4, 5, 123456, tzinfo=UTC)
    written = entry.to_json()
    assert written == {**go, "ExpiryData": "2026-12-11T15:04:05.123456Z"}
    assert json.loads(json.dumps(written)) == written
    assert Entry(entry.repository, entry.digest, BLOB, entry.expiry).to_json()["EntryType"] == 0
    for bad in (
        {"Key": "nodigest", "ExpiryData": go["ExpiryData"], "EntryType": 0},
        {**go, "EntryType": 7},
        {**go, "ExpiryData": "tomorrow"},
        "text",
    ):
        assert Entry.from_json(bad) is None


def test_only_the_worker_with_the_timers_expires_what_any_worker_cached() -> None:
    """Workers share the schedule file; content expires once, in one worker."""
    digest = Digest.parse("sha256:" + "b" * 64)

    async def run() -> tuple[list[str], list[str]]:
        driver = InMemoryDriver()
        expired: dict[str, list[str]] = {"primary": [], "other": []}

        def recorder(name: str) -> Callable[[Entry], Awaitable[None]]:
            async def on_expire(entry: Entry) -> None:
                expired[name].append(entry.key)
            return on_expire

        primary = TTLScheduler(driver, recorder("primary"), timers=True, shared=True)
        other = TTLScheduler(driver, recorder("other"), timers=False, shared=True)
        await primary.start()
        await other.start()
        other.add("lib/app", digest, BLOB, 0.0)  # cached by the other worker
        await other.save()
        await primary.save()  # what the periodic save does: adopt the file's entries
        for _ in range(100):
            if expired["primary"]:
                break
            await asyncio.sleep(0.01)
        await other.stop()
        await primary.stop()
        assert json.loads(await driver.get_content("/scheduler-state.json")) == {}
        return expired["primary"], expired["other"]

    assert asyncio.run(run()) == ([f"lib/app@{digest}"], [])


async def _fill_of(data: bytes, digest: Digest, release: asyncio.Event) -> BlobFill:
    """A fill of ``data`` checked against ``digest``: all but its last MiB arrive at
    once, the rest once ``release`` is set."""

    async def chunks() -> AsyncIterator[bytes]:
        yield data[: -(1 << 20)]
        await release.wait()
        yield data[-(1 << 20) :]

    async def download(fill: BlobFill) -> None:
        await verify(fill.tee(chunks(), len(data)), digest, len(data))

    fill = BlobFill(download)
    assert await fill.streaming()
    return fill


async def _take(chunks: AsyncIterator[bytes], count: int) -> bytes:
    """At least ``count`` bytes of ``chunks``, as many as its chunks hold."""
    received = b""
    while len(received) < count:
        received += await anext(chunks)
    return received


async def _rest(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def test_a_fill_holds_back_the_last_mib_until_the_digest_matched() -> None:
    data = os.urandom(HOLD_BACK + (2 << 20) + 5)
    sent = len(data) - HOLD_BACK

    async def scenario() -> None:
        release = asyncio.Event()
        fill = await _fill_of(data, Digest.of(data), release)
        early = fill.reader()
        assert await _take(early, sent) == data[:sent]  # nothing of the held-back MiB
        ranged = asyncio.create_task(_rest(fill.reader(len(data) - 10)))
        await asyncio.sleep(0)
        assert not ranged.done()
        release.set()
        assert await _rest(early) == data[sent:]
        assert await ranged == data[-10:]
        await fill.task
        assert await _rest(fill.reader()) == data  # a reader after the end: the whole spool

    asyncio.run(scenario())


def test_a_fill_of_wrong_bytes_breaks_its_readers_off() -> None:
    data = os.urandom(HOLD_BACK + (1 << 20))
    sent = len(data) - HOLD_BACK

    async def scenario() -> None:
        release = asyncio.Event()
        fill = await _fill_of(data, Digest.of(b"other bytes"), release)
        reader = fill.reader()
        assert await _take(reader, sent) == data[:sent]
        release.set()
        with pytest.raises(DigestInvalid):
            await _rest(reader)
        with pytest.raises(DigestInvalid):  # a reader that comes later fails at once
            await anext(fill.reader())

    asyncio.run(scenario())


def test_a_spool_that_cannot_be_written_fails_the_fill(monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fill_module, "_write_all", disk_full)
    data = os.urandom(HOLD_BACK + (1 << 20))

    async def scenario() -> None:
        release = asyncio.Event()
        release.set()
        fill = await _fill_of(data, Digest.of(data), release)
        with pytest.raises(BackendUnavailable, match="spool"):
            await fill.task
        with pytest.raises(BackendUnavailable):  # its readers fail too, nothing is served
            await anext(fill.reader())

    asyncio.run(scenario())


class _SlowDriver(InMemoryDriver):
    """Reads and writes that take a while, so that two merges would overlap."""

    async def get_content(self, path: str) -> bytes:
        await asyncio.sleep(0.05)
        return await super().get_content(path)

    async def put_content(self, path: str, content: bytes) -> None:
        await asyncio.sleep(0.05)
        await super().put_content(path, content)


def test_processes_saving_at_once_lose_no_entry() -> None:
    """Two schedulers (workers or instances) merging the file at the same moment take
    turns, so both entries are kept; one merge overwriting the other's would leave the
    lost entry to never expire."""
    first, second = (Digest.parse("sha256:" + c * 64) for c in "cd")

    async def run() -> tuple[set[str], list[str]]:
        driver = _SlowDriver()

        async def nothing(_entry: Entry) -> None:
            return None

        primary = TTLScheduler(driver, nothing, timers=True, shared=True)
        other = TTLScheduler(driver, nothing, timers=False, shared=True)
        primary.add("lib/app", first, BLOB, 60.0)
        other.add("lib/app", second, BLOB, 60.0)
        await asyncio.gather(primary.save(), other.save())
        state = json.loads(await driver.get_content("/scheduler-state.json"))
        with pytest.raises(PathNotFound):  # each merge withdrew its claim
            await driver.list("/scheduler-state.claims")
        return set(state)

    assert asyncio.run(run()) == {f"lib/app@{first}", f"lib/app@{second}"}


def test_a_stop_during_a_save_keeps_the_entries_for_the_last_save() -> None:
    digest = Digest.parse("sha256:" + "e" * 64)

    async def run() -> set[str]:
        driver = _SlowDriver()

        async def nothing(_entry: Entry) -> None:
            return None

        scheduler = TTLScheduler(driver, nothing, timers=False, shared=True)
        scheduler.add("lib/app", digest, BLOB, 60.0)
        saving = asyncio.ensure_future(scheduler.save())
        await asyncio.sleep(0.01)  # inside the merge, reading the file
        saving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await saving
        await scheduler.stop()
        return set(json.loads(await driver.get_content("/scheduler-state.json")))

    assert asyncio.run(run()) == {f"lib/app@{digest}"}
