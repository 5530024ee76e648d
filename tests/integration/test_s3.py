"""dockyard on S3 (moto's server on loopback): many instances as one, redirects, skopeo,
a bucket shared with Debian's docker-registry, and an S3 outage in the middle of a push.

Every registry is a real ``dockyard serve`` (or ``docker-registry serve``) process; every
S3 request goes over TCP to moto's standalone server. Round trips are counted from moto's
request log.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.integration.conftest import S3RegistryFactory
from tests.support.api import (
    blob_path,
    content_range,
    digest_of,
    push_blob,
    random_repo,
    upload_range,
    with_query,
)
from tests.support.backends import MotoServer, S3RegistryProcess, TcpProxy
from tests.support.ceph import RgwServer
from tests.support.data import blob
from tests.support.manifests import image, manifest_path, put_manifest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]

MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join((
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))


def relative(location: str) -> str:
    """Path and query of a Location, to send it to any instance."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def bucket_keys(moto: MotoServer | RgwServer, bucket: str, prefix: str = "") -> list[str]:
    client = moto.client()
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        resp = client.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in resp.get("Contents", [])]
        if not resp.get("IsTruncated"):
            return keys
        kwargs["ContinuationToken"] = resp["NextContinuationToken"]


def bucket_uploads(moto: MotoServer | RgwServer, bucket: str) -> list[str]:
    resp = moto.client().list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in resp.get("Uploads", [])]


def blob_key(digest: str) -> str:
    algorithm, hex_ = digest.split(":")
    return f"docker/registry/v2/blobs/{algorithm}/{hex_[:2]}/{hex_}/data"


@pytest.fixture
def clients() -> Iterator[Callable[[S3RegistryProcess], httpx.Client]]:
    opened: list[httpx.Client] = []

    def make(server: S3RegistryProcess) -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=120, follow_redirects=False)
        opened.append(client)
        return client

    try:
        yield make
    finally:
        for client in opened:
            client.close()


# -- two instances, one bucket ------------------------------------------------------------



def uploads_left_after_cleanup(moto: MotoServer | RgwServer, bucket: str) -> list[str]:
    """Multipart uploads still in the bucket once a finished upload's clean-up ran.

    The registry removes a finished upload's files (aborting what is under them) just
    after the response, so this waits a bounded moment for them to go.
    """
    deadline = time.monotonic() + 10
    while (left := bucket_uploads(moto, bucket)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left

def test_two_instances_share_one_bucket(
    s3_registry_factory: S3RegistryFactory,
    s3_server: MotoServer | RgwServer,
    clients: Callable[[S3RegistryProcess], httpx.Client],
) -> None:
    """Chunks of one upload alternate between two instances; the other one serves it.
    On moto and on radosgw (multipart uploads, pre-signed URLs, delete, catalog)."""
    s3_bucket = s3_server.create_bucket()
    on = {"endpoint": s3_server.url, "s3": s3_server.credentials}
    # No upload purging: moto dates every multipart upload 2010, so an instance's first
    # purge (5-60 s after its start) would abort this one in the middle of the test.
    no_purging = {"maintenance": {"uploadpurging": {"enabled": False}}}
    no_redirect = {"storage": {"redirect": {"disable": True}, **no_purging}}
    streaming = s3_registry_factory(s3_bucket, overrides=no_redirect, **on)
    redirecting = s3_registry_factory(s3_bucket, overrides={"storage": no_purging}, **on)
    a, b = clients(streaming), clients(redirecting)
    repo = random_repo("s3")
    # 1 MiB first (read back), 16 MiB after a small part (UploadPartCopy), 1 MiB parts
    # between (small last parts), and a last piece in the closing PUT.
    sizes = [MiB, 16 * MiB, MiB, 16 * MiB, MiB]
    data = blob(sum(sizes) + 4321, seed=1)
    digest = digest_of(data)

    response = a.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    location = relative(response.headers["Location"])
    offset = 0
    for i, size in enumerate(sizes):
        client, other = (a, b) if i % 2 == 0 else (b, a)
        chunk = data[offset : offset + size]
        response = client.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": content_range(offset, chunk),
        })
        assert response.status_code == 202, (i, response.text)
        offset += size
        assert response.headers["Range"] == upload_range(offset)
        location = relative(response.headers["Location"])
        # the other instance sees the same upload at the same offset
        status = other.get(location)
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == upload_range(offset)
    # no blob before the upload is finished
    assert a.head(blob_path(repo, digest)).status_code == 404
    response = b.put(with_query(location, digest=digest), content=data[offset:],
                     headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest

    # both instances see it, with its size; nothing of the upload is left in the bucket
    for client in (a, b):
        head = client.head(blob_path(repo, digest))
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == len(data)
    assert uploads_left_after_cleanup(s3_server, s3_bucket) == []
    assert blob_key(digest) in bucket_keys(s3_server, s3_bucket, "docker/registry/v2/blobs/")
    assert not [k for k in bucket_keys(s3_server, s3_bucket) if "/_uploads/" in k]

    # streamed by the instance with storage.redirect.disable, ranges too
    got = a.get(blob_path(repo, digest))
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == digest[7:]
    part = a.get(blob_path(repo, digest), headers={"Range": "bytes=17825792-17825891"})
    assert part.status_code == 206 and part.content == data[17 * MiB : 17 * MiB + 100]
    # redirected to a pre-signed URL of the S3 server by the other
    redirect = b.get(blob_path(repo, digest))
    assert redirect.status_code == 307, redirect.text
    target = redirect.headers["Location"]
    assert target.startswith(f"{s3_server.url}/{s3_bucket}/{blob_key(digest)}?")
    assert "X-Amz-Signature=" in target
    fetched = httpx.get(target, timeout=120)
    assert fetched.status_code == 200 and fetched.content == data

    # catalog from both; delete on one, gone on the other
    for client in (a, b):
        catalog = client.get("/v2/_catalog", params={"n": 1000})
        assert catalog.status_code == 200
        assert repo in catalog.json()["repositories"]
    assert a.delete(blob_path(repo, digest)).status_code == 202
    assert b.head(blob_path(repo, digest)).status_code == 404
    assert b.get(blob_path(repo, digest)).status_code == 404


def test_round_trips_per_request(
    s3_registry_factory: S3RegistryFactory,
    moto_server: MotoServer,
    s3_bucket: str,
    clients: Callable[[S3RegistryProcess], httpx.Client],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """S3 requests per registry request, counted in moto's log (printed for the README)."""
    # no upload purging: its walk would add requests to the log
    quiet = {"storage": {"maintenance": {"uploadpurging": {"enabled": False}}}}
    server = s3_registry_factory(s3_bucket, overrides=quiet)
    client = clients(server)
    repo = random_repo("rt")
    data = blob(3 * MiB, seed=2)
    digest = push_blob(client, repo, data)
    figures: dict[str, list[tuple[str, str, int]]] = {}

    def quiet_log() -> int:
        """moto's log size once nothing has been added for 0.3 s: work that a request
        leaves running after its response (removing a finished upload) is counted
        with that request, not with the next one."""
        size, deadline = moto_server.log_size(), time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = moto_server.log_size()
            if now == size:
                return size
            size = now
        return size

    def measure(name: str, request: Callable[[], int], status: int) -> None:
        mark = quiet_log()
        assert request() == status
        quiet_log()
        figures[name] = [r for r in moto_server.requests(mark)
                         if r[1].startswith(f"/{s3_bucket}")]

    def push() -> int:
        push_blob(client, random_repo("rt"), blob(3 * MiB, seed=3))
        return 201

    measure("blob HEAD", lambda: client.head(blob_path(repo, digest)).status_code, 200)
    measure("blob HEAD, unknown",
            lambda: client.head(blob_path(repo, "sha256:" + "0" * 64)).status_code, 404)
    measure("blob GET (redirect)", lambda: client.get(blob_path(repo, digest)).status_code, 307)
    measure("monolithic push (POST+PUT), 3 MiB", push, 201)
    chunked = random_repo("rt")
    chunks = [blob(MiB, seed=4), blob(MiB, seed=5), blob(6 * MiB, seed=6)]
    location = relative(client.post(f"/v2/{chunked}/blobs/uploads/").headers["Location"])
    offset = 0

    def patch(chunk: bytes) -> int:
        nonlocal location, offset
        response = client.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": content_range(offset, chunk)})
        location, offset = relative(response.headers["Location"]), offset + len(chunk)
        return response.status_code

    measure("first PATCH, 1 MiB", lambda: patch(chunks[0]), 202)
    measure("PATCH 1 MiB after a 1 MiB part (read back)", lambda: patch(chunks[1]), 202)
    measure("PATCH 6 MiB after a 2 MiB part (read back)", lambda: patch(chunks[2]), 202)
    measure("closing PUT, no body", lambda: client.put(
        with_query(location, digest=digest_of(b"".join(chunks)))).status_code, 201)
    built = image(client, repo, layers=1)  # its config and layer pushed, not counted
    accept = {"Accept": built.media_type}
    measure("manifest PUT by tag, 1 layer", lambda: put_manifest(
        client, repo, "v1", built).status_code, 201)
    measure("manifest PUT of the same by a second tag", lambda: put_manifest(
        client, repo, "v2", built).status_code, 201)
    measure("manifest GET by tag", lambda: client.get(
        manifest_path(repo, "v1"), headers=accept).status_code, 200)
    measure("manifest GET by tag again", lambda: client.get(
        manifest_path(repo, "v1"), headers=accept).status_code, 200)
    measure("tags/list", lambda: client.get(f"/v2/{repo}/tags/list").status_code, 200)
    measure("_catalog?n=2", lambda: client.get("/v2/_catalog?n=2").status_code, 200)
    with capsys.disabled():
        for name, requests in figures.items():
            methods = ", ".join(f"{m} {p.split('?')[0].rsplit('/', 1)[-1]}" for m, p, _ in requests)
            print(f"\n  S3 requests, {name}: {len(requests)} ({methods})")
    assert len(figures["blob HEAD"]) == 2  # the repository's link, then HeadObject
    assert len(figures["blob GET (redirect)"]) == 2  # the same; the URL is signed locally
    # Two blobs checked (link and HEAD each), then payload, revision link, tag index, current.
    assert len(figures["manifest PUT by tag, 1 layer"]) == 2 * 2 + 4
    assert len(figures["manifest GET by tag again"]) == 1  # `current`; the manifest from the LRU


def test_cancelled_and_purged_uploads_leave_no_multipart_upload(
    s3_registry_factory: S3RegistryFactory,
    s3_server: MotoServer | RgwServer,
    clients: Callable[[S3RegistryProcess], httpx.Client],
) -> None:
    s3_bucket = s3_server.create_bucket()
    server = s3_registry_factory(s3_bucket, endpoint=s3_server.url, s3=s3_server.credentials)
    client = clients(server)
    repo = random_repo("cancel")
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    location = relative(response.headers["Location"])
    chunk = blob(2 * MiB)
    response = client.patch(location, content=chunk, headers={
        "Content-Type": "application/octet-stream", "Content-Range": content_range(0, chunk)})
    assert response.status_code == 202
    assert len(bucket_uploads(s3_server, s3_bucket)) == 1  # the chunk is an MPU part
    assert client.delete(relative(response.headers["Location"])).status_code == 204
    assert bucket_uploads(s3_server, s3_bucket) == []
    assert not [k for k in bucket_keys(s3_server, s3_bucket) if "/_uploads/" in k]


# -- real clients ---------------------------------------------------------------------------


def _tar_gz(name: str, content: bytes) -> tuple[bytes, str]:
    """A gzipped tar with one file; returns it and the digest of the tar (its diff id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=1, mtime=0), digest_of(tar_bytes)


def build_oci_layout(root: Path, tag: str, layer_sizes: list[int], seed: int) -> str:
    """An OCI image layout with one image of ``layer_sizes`` layers; returns its digest."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        (blobs / digest[7:]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        layer, diff_id = _tar_gz(f"file{i}", blob(size, seed=seed * 100 + i))
        layers.append({"mediaType": OCI_LAYER, **put(layer)})
        diff_ids.append(diff_id)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **put(config)}, "layers": layers,
    }).encode()
    desc = {"mediaType": OCI_MANIFEST, **put(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag}}
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return str(desc["digest"])


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("skopeo")
    if binary is None:
        pytest.fail("skopeo is not installed: apt-get install -y skopeo")
    result = subprocess.run(
        [binary, "--insecure-policy", *args], capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, check=False,
        env={**os.environ, "HOME": os.environ.get("HOME", "/root")},
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result


def copy(src: str, dest: str, *extra: str) -> None:
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dest)


def ref(server: S3RegistryProcess, repo: str, tag: str) -> str:
    return f"docker://127.0.0.1:{server.port}/{repo}:{tag}"


def layout_blobs(root: Path) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def test_skopeo_push_and_pull_through_dockyard_on_s3(
    s3_registry_factory: S3RegistryFactory, s3_server: MotoServer | RgwServer, tmp_path: Path
) -> None:
    # blob GETs redirect to the S3 server (moto, radosgw), skopeo follows
    server = s3_registry_factory(
        s3_server.create_bucket(), endpoint=s3_server.url, s3=s3_server.credentials
    )
    repo = random_repo("skopeo")
    source = tmp_path / "source"
    digest = build_oci_layout(source, "v1", [12 * MiB, 100_000], seed=3)
    copy(f"oci:{source}:v1", ref(server, repo, "v1"), "--preserve-digests")
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", ref(server, repo, "v1")).stdout)
    assert inspected["Digest"] == digest
    pulled = tmp_path / "pulled"
    copy(ref(server, repo, "v1"), f"oci:{pulled}:v1", "--preserve-digests")
    assert layout_blobs(pulled) == layout_blobs(source)


def test_bucket_shared_with_docker_registry(
    s3_registry_factory: S3RegistryFactory,
    s3_server: MotoServer | RgwServer,
    tmp_path: Path,
) -> None:
    """An image pushed by docker-registry 2.8 is pulled through dockyard from the same
    bucket with identical digests, and the other way round (on moto and on radosgw)."""
    s3_bucket = s3_server.create_bucket()
    on = {"endpoint": s3_server.url, "s3": s3_server.credentials}
    distribution = s3_registry_factory(s3_bucket, kind="distribution", **on)
    dockyard = s3_registry_factory(s3_bucket, **on)

    theirs = random_repo("compat")
    source = tmp_path / "source"
    build_oci_layout(source, "v1", [6 * MiB, 3000], seed=4)
    # Docker's own format, as docker push writes it
    copy(f"oci:{source}:v1", ref(distribution, theirs, "v1"), "--format", "v2s2")
    with httpx.Client(timeout=60) as http:
        manifests = [
            http.get(f"{server.url}/v2/{theirs}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
            for server in (distribution, dockyard)
        ]
    assert [m.status_code for m in manifests] == [200, 200]
    assert manifests[0].content == manifests[1].content
    assert manifests[0].headers["Docker-Content-Digest"] == \
        manifests[1].headers["Docker-Content-Digest"]
    pulled = tmp_path / "pulled"
    copy(ref(dockyard, theirs, "v1"), f"dir:{pulled}")
    manifest = json.loads((pulled / "manifest.json").read_bytes())
    for layer in [manifest["config"], *manifest["layers"]]:
        data = (pulled / layer["digest"][7:]).read_bytes()
        assert digest_of(data) == layer["digest"] and len(data) == layer["size"]
    assert any(k.startswith(f"docker/registry/v2/repositories/{theirs}/_manifests/tags/v1/")
               for k in bucket_keys(s3_server, s3_bucket))

    ours = random_repo("compat")
    digest = build_oci_layout(tmp_path / "ours", "v2", [7 * MiB], seed=5)
    copy(f"oci:{tmp_path / 'ours'}:v2", ref(dockyard, ours, "v2"), "--preserve-digests")
    back = tmp_path / "back"
    copy(ref(distribution, ours, "v2"), f"oci:{back}:v2", "--preserve-digests")
    assert layout_blobs(back) == layout_blobs(tmp_path / "ours")
    inspected = json.loads(
        skopeo("inspect", "--tls-verify=false", ref(distribution, ours, "v2")).stdout
    )
    assert inspected["Digest"] == digest


# -- faults ---------------------------------------------------------------------------------


def test_s3_outage_in_the_middle_of_a_push(
    s3_registry_factory: S3RegistryFactory,
    moto_server: MotoServer,
    s3_bucket: str,
    tcp_proxy_factory: Callable[[int], TcpProxy],
    clients: Callable[[S3RegistryProcess], httpx.Client],
) -> None:
    """S3 goes away between chunks, during a chunk and during the final PUT: 503 with
    Retry-After each time, no blob visible, and the same push completes once S3 is back."""
    proxy = tcp_proxy_factory(moto_server.port)
    server = s3_registry_factory(s3_bucket, endpoint=proxy.url)
    client = clients(server)
    repo = random_repo("fault")
    data = blob(30 * MiB + 99, seed=6)
    digest = digest_of(data)

    def patch(location: str, offset: int, chunk: bytes) -> httpx.Response:
        return client.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": content_range(offset, chunk),
        })

    def assert_unavailable(response: httpx.Response) -> None:
        assert response.status_code == 503, response.text
        assert response.headers.get("Retry-After")
        if response.request.method != "HEAD":
            assert response.json()["errors"][0]["code"] == "UNAVAILABLE"

    def assert_no_blob() -> None:
        assert client.head(blob_path(repo, digest)).status_code == 404
        assert blob_key(digest) not in bucket_keys(moto_server, s3_bucket, blob_key(digest))

    response = client.post(f"/v2/{repo}/blobs/uploads/")
    location = relative(response.headers["Location"])
    response = patch(location, 0, data[: 12 * MiB])
    assert response.status_code == 202
    location, offset = relative(response.headers["Location"]), 12 * MiB

    # 1. between chunks
    proxy.cut()
    assert_unavailable(patch(location, offset, data[offset : offset + 6 * MiB]))
    assert_unavailable(client.head(blob_path(repo, digest)))
    proxy.restore()
    assert_no_blob()
    status = client.get(location)
    assert status.status_code == 204 and status.headers["Range"] == upload_range(offset)

    # 2. during a chunk: the line goes down after 11 of 14 MiB were sent
    def body() -> Iterator[bytes]:
        for i in range(14):
            if i == 11:
                proxy.cut()
            yield data[offset + i * MiB : offset + (i + 1) * MiB]

    try:
        response = client.patch(location, content=body(), headers={
            "Content-Type": "application/octet-stream"})
    except httpx.HTTPError:
        pass  # the registry may answer and close before reading the rest of the body
    else:
        assert_unavailable(response)
    proxy.restore()
    assert_no_blob()
    status = client.get(location)
    assert status.status_code == 204 and status.headers["Range"] == upload_range(offset)
    response = patch(location, offset, data[offset : offset + 14 * MiB])
    assert response.status_code == 202, response.text
    location, offset = relative(response.headers["Location"]), offset + 14 * MiB

    # 3. during the final PUT
    proxy.cut()
    assert_unavailable(client.put(with_query(location, digest=digest), content=data[offset:],
                                  headers={"Content-Type": "application/octet-stream"}))
    proxy.restore()
    assert_no_blob()
    response = client.put(with_query(location, digest=digest), content=data[offset:],
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Range": content_range(offset, data[offset:])})
    assert response.status_code == 201, response.text
    got = client.get(blob_path(repo, digest), follow_redirects=True)
    assert got.status_code == 200 and got.content == data
    assert uploads_left_after_cleanup(moto_server, s3_bucket) == []


def test_bad_s3_config_stops_start_naming_the_key(
    s3_bucket: str, moto_server: MotoServer, tmp_path: Path
) -> None:
    server = S3RegistryProcess(
        tmp_path / f"bad-{uuid.uuid4().hex[:6]}",
        s3={"bucket": s3_bucket, "regionendpoint": moto_server.url, "chunksize": 1024},
    )
    with pytest.raises(Exception, match=r"storage\.s3\.chunksize"):
        server.start(deadline=15)
    server.stop()
