"""The pull-through cache (``proxy.remoteurl``) against real upstreams on loopback.

The upstream is Debian's ``docker-registry`` 2.8 behind htpasswd; images are pushed
there with skopeo and pulled through dockyard with skopeo. A small fake upstream
(in this process, on loopback) sends wrong bytes to prove nothing unverified is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.auth.conftest import start_token_env
from tests.support.interop import MANIFEST_ACCEPT, Skopeo, random_repo
from tests.support.net import wait_until
from tests.support.proxy import (
    PASSWORD,
    USER,
    V2,
    blob_file,
    docker_ref,
    layer_link,
    proxy_config,
    push,
    push_blob,
    start_upstream,
    upstream_manifest,
)
from tests.support.servers import RegistryProcess

from .conftest import Images, ServerFactory

pytestmark = pytest.mark.interop


@pytest.fixture
def upstream(server_factory: ServerFactory, tmp_path: Path) -> RegistryProcess:
    return start_upstream(server_factory, tmp_path)


# -- pulls through the cache -----------------------------------------------------------


def test_pull_through_keeps_every_digest(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """A single-platform image and a multi-arch index pull through with the upstream's
    digests, land in the normal layout, and are served from it afterwards."""
    repo = random_repo("proxy")
    push(skopeo, images.single.ref, upstream, repo, "v1")
    push(skopeo, images.index.ref, upstream, repo, "multi")
    proxy = server_factory("dockyard", overrides=proxy_config(upstream.url))

    for tag in ("v1", "multi"):
        expected = upstream_manifest(upstream, repo, tag)
        out = tmp_path / f"out-{tag}"
        skopeo.copy(docker_ref(proxy, repo, tag), f"oci:{out}:{tag}", "--all")
        served = skopeo.raw_manifest(docker_ref(proxy, repo, tag))
        assert served == expected.content
        assert (
            f"sha256:{hashlib.sha256(served).hexdigest()}"
            == (expected.headers["Docker-Content-Digest"])
        )
        pulled_index = json.loads((out / "index.json").read_text())
        assert pulled_index["manifests"][0]["digest"] == expected.headers["Docker-Content-Digest"]

    index = json.loads(upstream_manifest(upstream, repo, "multi").content)
    children = [m["digest"] for m in index["manifests"]]
    for child in children:
        body = json.loads(upstream_manifest(upstream, repo, child).content)
        for layer in [body["config"], *body["layers"]]:
            data = blob_file(proxy, layer["digest"])
            assert hashlib.sha256(data.read_bytes()).hexdigest() == layer["digest"][7:]
            assert layer_link(proxy, repo, layer["digest"]).read_text() == layer["digest"]

    # Served from the cache now: the upstream's access log gains no blob request.
    before = upstream.log_text().count("/blobs/sha256:")
    skopeo.copy(docker_ref(proxy, repo, "v1"), f"oci:{tmp_path / 'again'}:v1")
    assert upstream.log_text().count("/blobs/sha256:") == before

    tags = httpx.get(f"{proxy.url}/v2/{repo}/tags/list").json()
    assert sorted(tags["tags"]) == ["multi", "v1"]
    catalog = httpx.get(f"{proxy.url}/v2/_catalog").json()
    assert repo in catalog["repositories"]


def test_writes_are_refused_with_unsupported(
    upstream: RegistryProcess, server_factory: ServerFactory
) -> None:
    proxy = server_factory("dockyard", overrides=proxy_config(upstream.url))
    digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
    with httpx.Client(base_url=proxy.url) as client:
        answers = [
            client.post("/v2/any/blobs/uploads/"),
            client.post(f"/v2/any/blobs/uploads/?mount={digest}&from=other"),
            client.put(
                "/v2/any/manifests/v1",
                content=b"{}",
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ),
            client.delete(f"/v2/any/manifests/{digest}"),
            client.delete(f"/v2/any/blobs/{digest}"),
        ]
    for response in answers:
        assert response.status_code == 405, (response.request.method, response.text)
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_upstream_down_serves_the_cache_and_503_otherwise(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    repo = random_repo("proxy")
    push(skopeo, images.single.ref, upstream, repo, "v1")
    push(skopeo, images.index.ref, upstream, repo, "uncached")
    proxy = server_factory("dockyard", overrides=proxy_config(upstream.url))
    skopeo.copy(docker_ref(proxy, repo, "v1"), f"oci:{tmp_path / 'first'}:v1")
    uncached_index = upstream_manifest(upstream, repo, "uncached").headers["Docker-Content-Digest"]
    upstream.stop()

    skopeo.copy(docker_ref(proxy, repo, "v1"), f"oci:{tmp_path / 'cached'}:v1")
    with httpx.Client(base_url=proxy.url, headers={"Accept": MANIFEST_ACCEPT}) as client:
        for path in (
            f"/v2/{repo}/manifests/uncached",
            f"/v2/{repo}/manifests/{uncached_index}",
            f"/v2/{repo}/blobs/sha256:{'ab' * 32}",
            f"/v2/{random_repo('never')}/tags/list",
        ):
            response = client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert response.headers["Retry-After"]
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
    assert "Traceback" not in proxy.log_text()


# -- an upstream that sends wrong bytes ------------------------------------------------


class _LyingUpstream(BaseHTTPRequestHandler):
    """Names one digest and sends other bytes, for blobs and manifests alike;
    rate-limits everything under ``limited/``."""

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + "0" * 64,
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    claimed = "sha256:" + hashlib.sha256(b"the real content").hexdigest()
    requests: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.requests.append(f"{self.command} {self.path}")
        self.send_response(200)
        if "/manifests/" in self.path:
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Docker-Content-Digest", self.claimed)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/v2/limited/"):
            self.requests.append(f"{self.command} {self.path}")
            self.send_response(429)
            self.send_header("Retry-After", "42")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/v2/":
            self._answer(b"{}")
        elif "/manifests/" in self.path:
            self._answer(self.manifest)
        else:
            self._answer(b"not the content at all")

    do_HEAD = do_GET


@pytest.fixture
def lying_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LyingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wrong_bytes_from_upstream_are_never_cached(
    lying_upstream: str, server_factory: ServerFactory
) -> None:
    proxy = server_factory("dockyard", overrides={"proxy": {"remoteurl": lying_upstream}})
    claimed = _LyingUpstream.claimed
    with httpx.Client(base_url=proxy.url, headers={"Accept": MANIFEST_ACCEPT}) as client:
        for _ in range(2):  # the second attempt asks the upstream again: nothing was kept
            for path in (
                f"/v2/lies/blobs/{claimed}",
                f"/v2/lies/manifests/{claimed}",
                "/v2/lies/manifests/latest",
            ):
                response = client.get(path)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert not blob_file(proxy, claimed).exists()
    assert not layer_link(proxy, "lies", claimed).exists()
    repo_dir = proxy.root / V2 / "repositories" / "lies"
    assert not list(repo_dir.glob("_manifests/**/link"))
    assert not list(repo_dir.glob("_uploads/*/data")), "a failed fill left its upload behind"
    blob_requests = [r for r in _LyingUpstream.requests if f"/blobs/{claimed}" in r]
    assert len(blob_requests) == 2
    assert "Traceback" not in proxy.log_text()


# -- expiry ---------------------------------------------------------------------------


def _state(proxy: RegistryProcess) -> dict[str, Any]:
    path = proxy.root / "scheduler-state.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cached_content_expires_after_ttl(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
    workers: str,
) -> None:
    """With two workers, whichever cached the content, the first one expires it (it
    reads the other's entries from scheduler-state.json)."""
    repo = random_repo("proxy")
    push(skopeo, images.single.ref, upstream, repo, "v1")
    proxy = server_factory(
        "dockyard", overrides=proxy_config(upstream.url, ttl="2s"),
        extra_args=["--workers", workers],
    )
    skopeo.copy(docker_ref(proxy, repo, "v1"), f"oci:{tmp_path / 'out'}:v1")
    manifest = json.loads(upstream_manifest(upstream, repo, "v1").content)
    layer = manifest["layers"][0]["digest"]
    assert blob_file(proxy, layer).exists()

    def gone() -> bool:
        return not blob_file(proxy, layer).exists() and not layer_link(proxy, repo, layer).exists()

    wait_until(gone, what="the expired layer to be removed", deadline=30)
    # Pulled again, from the upstream, after expiry.
    skopeo.copy(docker_ref(proxy, repo, "v1"), f"oci:{tmp_path / 'again'}:v1")
    assert blob_file(proxy, layer).exists()


def test_schedule_survives_a_restart_in_distributions_format(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    repo = random_repo("proxy")
    push(skopeo, images.single.ref, upstream, repo, "v1")
    proxy = server_factory("dockyard", overrides=proxy_config(upstream.url, ttl="4s"))
    response = httpx.get(f"{proxy.url}/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert response.status_code == 200
    layer = json.loads(response.content)["layers"][0]["digest"]
    assert httpx.get(f"{proxy.url}/v2/{repo}/blobs/{layer}").status_code == 200
    proxy.stop()  # the schedule is written on stop

    state = _state(proxy)
    key = f"{repo}@{layer}"
    assert state[key]["Key"] == key
    assert state[key]["EntryType"] == 0
    manifest_key = f"{repo}@{response.headers['Docker-Content-Digest']}"
    assert state[manifest_key]["EntryType"] == 1
    # An entry whose content is already gone (removed by hand) is dropped quietly.
    missing = f"{repo}@sha256:{'cd' * 32}"
    state[missing] = {
        "Key": missing,
        "ExpiryData": "2020-01-01T00:00:00.123456789Z",
        "EntryType": 0,
    }
    (proxy.root / "scheduler-state.json").write_text(json.dumps(state))
    expiry = datetime.fromisoformat(state[key]["ExpiryData"].replace("Z", "+00:00"))
    time.sleep(max(expiry.timestamp() - time.time(), 0) + 0.5)  # expire while stopped

    proxy.start()
    wait_until(
        lambda: not blob_file(proxy, layer).exists(),
        what="the layer that expired during the restart to be removed",
        deadline=30,
    )
    wait_until(
        lambda: not ({key, manifest_key, missing} & _state(proxy).keys()),
        what="the expired entries to leave scheduler-state.json",
        deadline=30,
    )
    assert "Traceback" not in proxy.log_text()


def test_instances_on_one_storage_keep_each_others_schedule(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """Two instances cache different content on one storage and stop at the same moment:
    each merges its entries into scheduler-state.json in turn, so neither's are lost."""
    shared = tmp_path / "shared"
    overrides = proxy_config(upstream.url, ttl="1h")
    proxies = [server_factory("dockyard", root=shared, overrides=overrides) for _ in range(2)]
    expected: set[str] = set()
    for _ in range(3):  # new content in each, then both stopping at once, three times
        for proxy in proxies:
            repo = random_repo("proxy")
            push(skopeo, images.single.ref, upstream, repo, "v1")
            response = httpx.get(
                f"{proxy.url}/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}
            )
            assert response.status_code == 200
            expected.add(f"{repo}@{response.headers['Docker-Content-Digest']}")
        with ThreadPoolExecutor(len(proxies)) as pool:
            list(pool.map(lambda proxy: proxy.stop(), proxies))
        stored = json.loads((shared / "scheduler-state.json").read_text())
        assert expected <= stored.keys()
        for proxy in proxies:
            proxy.start()
    assert not list((shared / "scheduler-state.claims").iterdir())  # every claim withdrawn


# -- several upstreams beside hosted repositories --------------------------------------


def test_upstreams_under_prefixes_beside_hosted_repositories(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """Two upstreams (docker-registry with htpasswd, an open dockyard) under prefixes,
    a hosted repository beside them; ``?ns=`` selects an upstream; a failing upstream's
    cached tag is served with a ``Warning``."""
    second = server_factory("dockyard")
    repo_a, repo_b = random_repo("proxy"), random_repo("proxy")
    push(skopeo, images.single.ref, upstream, repo_a, "v1")
    skopeo.copy(images.index.ref, docker_ref(second, repo_b, "multi"), "--all")
    proxy = server_factory(
        "dockyard",
        overrides={
            "proxy": {
                "upstreams": [
                    {
                        "prefix": "a",
                        "remoteurl": upstream.url,
                        "username": USER,
                        "password": PASSWORD,
                        "namespace": "a.example",
                        "ttl": "1h",
                    },
                    {"prefix": "mirror/b", "remoteurl": second.url, "namespace": "b.example"},
                ]
            }
        },
    )

    expected_a = upstream_manifest(upstream, repo_a, "v1")
    expected_b = httpx.get(
        f"{second.url}/v2/{repo_b}/manifests/multi", headers={"Accept": MANIFEST_ACCEPT}
    )
    skopeo.copy(docker_ref(proxy, f"a/{repo_a}", "v1"), f"oci:{tmp_path / 'a'}:v1")
    skopeo.copy(
        docker_ref(proxy, f"mirror/b/{repo_b}", "multi"), f"oci:{tmp_path / 'b'}:m", "--all"
    )
    assert skopeo.raw_manifest(docker_ref(proxy, f"a/{repo_a}", "v1")) == expected_a.content
    assert (
        skopeo.raw_manifest(docker_ref(proxy, f"mirror/b/{repo_b}", "multi")) == expected_b.content
    )

    # A hosted repository: pushes, pulls and deletes as usual.
    hosted = random_repo("hosted")
    skopeo.copy(images.single.ref, docker_ref(proxy, hosted, "v1"))
    skopeo.copy(docker_ref(proxy, hosted, "v1"), f"oci:{tmp_path / 'hosted'}:v1")
    with httpx.Client(base_url=proxy.url, headers={"Accept": MANIFEST_ACCEPT}) as client:
        refused = client.post(f"/v2/a/{repo_a}/blobs/uploads/")
        assert refused.status_code == 405
        assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        digest = client.get(f"/v2/{hosted}/manifests/v1").headers["Docker-Content-Digest"]
        assert client.delete(f"/v2/{hosted}/manifests/{digest}").status_code == 202

        # containerd's mirror request: the unprefixed name and ?ns=.
        by_ns = client.get(f"/v2/{repo_b}/manifests/multi", params={"ns": "b.example"})
        assert by_ns.status_code == 200
        assert by_ns.content == expected_b.content
        assert client.get(f"/v2/{repo_b}/manifests/multi").status_code == 404

        upstream.stop()
        stale = client.get(f"/v2/a/{repo_a}/manifests/v1")
        assert stale.status_code == 200
        assert stale.content == expected_a.content
        assert stale.headers["Warning"] == '110 - "Response is Stale"'
        fresh = client.get(f"/v2/mirror/b/{repo_b}/manifests/multi")
        assert fresh.status_code == 200 and "Warning" not in fresh.headers
    assert "Traceback" not in proxy.log_text()


def upstream_requests(upstream: RegistryProcess, method: str, path: str) -> list[str]:
    """The upstream's access-log lines of finished ``method`` requests for ``path``."""
    return [
        line
        for line in upstream.log_text().splitlines()
        if "response completed" in line and f"http.request.method={method}" in line and path in line
    ]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_concurrent_misses_make_one_upstream_download(
    upstream: RegistryProcess, server_factory: ServerFactory, workers: str
) -> None:
    """Eight pulls of one uncached blob, in one process or spread over two workers
    (which share storage only), make one upstream download."""
    repo = random_repo("proxy")
    digest = push_blob(upstream, repo, os.urandom(8 << 20))
    proxy = server_factory(
        "dockyard", overrides=proxy_config(upstream.url), extra_args=["--workers", workers]
    )

    def pull(_: int) -> tuple[int, str]:
        response = httpx.get(f"{proxy.url}/v2/{repo}/blobs/{digest}", timeout=60)
        return response.status_code, "sha256:" + hashlib.sha256(response.content).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(pull, range(8)))
    assert results == [(200, digest)] * 8
    downloads = upstream_requests(upstream, "GET", f"/v2/{repo}/blobs/{digest}")
    assert len(downloads) == 1, downloads
    assert "Traceback" not in proxy.log_text()


def test_token_auth_upstream(
    tmp_path_factory: pytest.TempPathFactory,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """docker-registry 2.8 with token auth, dockyard's token-server its issuer: the proxy
    follows the Bearer challenge with its credentials and keeps the token."""
    env = start_token_env(tmp_path_factory, "distribution")
    try:
        repo = random_repo("team")
        creds = env.creds("alice")
        skopeo.copy(
            images.single.ref, docker_ref(env.registry, repo, "v1"), f"--dest-creds={creds}"
        )
        proxy = server_factory(
            "dockyard",
            overrides={
                "proxy": {
                    "remoteurl": env.registry.url,
                    "username": "alice",
                    "password": env.passwords["alice"],
                }
            },
        )
        skopeo.copy(docker_ref(proxy, repo, "v1"), f"oci:{tmp_path / 'out'}:v1")
        token = env.token("alice", f"repository:{repo}:pull")
        expected = httpx.get(
            f"{env.registry.url}/v2/{repo}/manifests/v1",
            headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"},
        )
        assert expected.status_code == 200
        assert skopeo.raw_manifest(docker_ref(proxy, repo, "v1")) == expected.content
        # One token for all of the pull's requests: the proxy keeps it until it expires
        # (the issuer's access log names the proxy's aiohttp client).
        fetched = [
            line
            for line in env.issuer.log_text().splitlines()
            if "GET /token?" in line and "aiohttp/" in line
        ]
        assert len(fetched) == 1, fetched
        assert env.passwords["alice"] not in proxy.log_text()
    finally:
        env.registry.stop()
        env.issuer.stop()


def test_upstream_rate_limit_is_passed_on_with_retry_after(
    lying_upstream: str, server_factory: ServerFactory
) -> None:
    proxy = server_factory("dockyard", overrides={"proxy": {"remoteurl": lying_upstream}})
    with httpx.Client(base_url=proxy.url, headers={"Accept": MANIFEST_ACCEPT}) as client:
        for path in ("/v2/limited/app/manifests/latest", "/v2/limited/app/tags/list"):
            response = client.get(path)
            assert response.status_code == 429, (path, response.text)
            assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
            assert response.headers["Retry-After"] == "42"


def test_head_and_range_on_uncached_blobs_and_ttl_zero_keeps_no_schedule(
    upstream: RegistryProcess, server_factory: ServerFactory
) -> None:
    repo = random_repo("proxy")
    data = os.urandom(3 << 20)
    first, second = push_blob(upstream, repo, data), push_blob(upstream, repo, data[::-1])
    proxy = server_factory("dockyard", overrides=proxy_config(upstream.url, ttl="0"))
    with httpx.Client(base_url=proxy.url, timeout=60) as client:
        head = client.head(f"/v2/{repo}/blobs/{first}")
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(data))
        assert head.headers["Docker-Content-Digest"] == first
        # Answered by the upstream's HEAD: nothing downloaded, nothing cached yet.
        assert upstream_requests(upstream, "HEAD", f"/v2/{repo}/blobs/{first}")
        assert not upstream_requests(upstream, "GET", f"/v2/{repo}/blobs/{first}")
        assert not blob_file(proxy, first).exists()
        assert client.head(f"/v2/{repo}/blobs/sha256:{'ef' * 32}").status_code == 404
        ranged = client.get(f"/v2/{repo}/blobs/{second}", headers={"Range": "bytes=100-1099"})
        assert ranged.status_code == 206
        assert ranged.content == data[::-1][100:1100]
        assert ranged.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
        assert client.get(f"/v2/{repo}/blobs/{first}").content == data
    assert blob_file(proxy, first).exists() and blob_file(proxy, second).exists()
    proxy.stop()
    assert not (proxy.root / "scheduler-state.json").exists()  # ttl 0: kept forever


def test_docker_hub_namespace_gets_library(
    upstream: RegistryProcess,
    server_factory: ServerFactory,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """An upstream with ``namespace: docker.io`` names its images as Docker Hub does:
    ``hub/<name>`` (and ``<name>?ns=docker.io``) pull ``library/<name>`` from it."""
    name = random_repo("alpine").replace("/", "-")  # one component, as "alpine"
    push(skopeo, images.single.ref, upstream, f"library/{name}", "3")
    proxy = server_factory(
        "dockyard",
        overrides={
            "proxy": {
                "upstreams": [
                    {
                        "prefix": "hub",
                        "remoteurl": upstream.url,
                        "namespace": "docker.io",
                        "username": USER,
                        "password": PASSWORD,
                    }
                ]
            }
        },
    )
    expected = upstream_manifest(upstream, f"library/{name}", "3")
    skopeo.copy(docker_ref(proxy, f"hub/{name}", "3"), f"oci:{tmp_path / 'out'}:3")
    assert skopeo.raw_manifest(docker_ref(proxy, f"hub/{name}", "3")) == expected.content
    by_ns = httpx.get(
        f"{proxy.url}/v2/{name}/manifests/3",
        params={"ns": "docker.io"},
        headers={"Accept": MANIFEST_ACCEPT},
    )
    assert by_ns.status_code == 200
    assert by_ns.headers["Docker-Content-Digest"] == expected.headers["Docker-Content-Digest"]
    layer = json.loads(expected.content)["layers"][0]["digest"]
    assert layer_link(proxy, f"hub/{name}", layer).exists()
