"""Storage middleware through a real registry process: clients follow the redirects.

``redirect`` on the filesystem driver sends blob downloads to a local HTTP server
that serves the storage root, and on S3 to moto's bucket URL; ``cloudfront`` on S3
answers with signed CloudFront URLs (checked with ``cryptography``), except for
clients inside the AWS ranges of ``ipfilteredby``, served here by a local JSON
document, which get S3's own pre-signed URL and fetch the bytes from moto.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.integration.conftest import S3RegistryFactory
from tests.support.api import blob_path, push_blob, random_repo
from tests.support.backends import MotoServer, S3RegistryProcess
from tests.support.servers import RegistryProcess, RegistryStartError
from tests.unit.test_storage_middleware import verify

RegistryFactory = Callable[..., RegistryProcess]
NO_PURGING = {"maintenance": {"uploadpurging": {"enabled": False}}}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def file_server() -> Iterator[Callable[[Path], str]]:
    """``file_server(directory)``: the URL of an HTTP server on loopback serving it."""
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _middleware(name: str, **options: Any) -> dict[str, Any]:
    return {"middleware": {"storage": [{"name": name, "options": options}]}}


def test_redirect_to_a_server_of_the_storage_root(
    registry_factory: RegistryFactory, file_server: Callable[[Path], str]
) -> None:
    """The blob GET answers 307 to baseurl + storage path; the client gets the bytes there."""
    # The mirror serves the server's work directory, whose data/ is the storage root:
    # baseurl's path is joined in front of the storage path, as distribution does.
    server = registry_factory(start=False)
    mirror = file_server(server.workdir)
    server.reconfigure(_middleware("redirect", baseurl=mirror + "/data"))
    server.start()
    data = os.urandom(300_000)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        repo = random_repo("mwredirect")
        digest = push_blob(client, repo, data)
        hexdigest = digest.split(":")[1]
        response = client.get(blob_path(repo, digest))
        assert response.status_code == 307, response.text
        assert response.headers["Location"] == (
            f"{mirror}/data/docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"
        )
        assert response.headers["Docker-Content-Digest"] == digest
        followed = client.get(blob_path(repo, digest), follow_redirects=True)
        assert followed.status_code == 200 and followed.content == data
        # HEAD is answered by the registry itself; unknown blobs stay 404.
        assert client.head(blob_path(repo, digest)).status_code == 200
        missing = blob_path(repo, "sha256:" + "0" * 64)
        assert client.get(missing).status_code == 404


def test_redirect_on_s3_to_the_bucket_url(
    s3_registry_factory: S3RegistryFactory, moto_server: MotoServer, s3_bucket: str
) -> None:
    """On S3 the rewrite replaces the pre-signed URL with baseurl + the storage path."""
    overrides = {"storage": NO_PURGING,
                 **_middleware("redirect", baseurl=f"{moto_server.url}/{s3_bucket}")}
    server = s3_registry_factory(s3_bucket, overrides=overrides)
    data = os.urandom(200_000)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        repo = random_repo("mwredirects3")
        digest = push_blob(client, repo, data)
        response = client.get(blob_path(repo, digest))
        assert response.status_code == 307
        location = response.headers["Location"]
        assert location.startswith(f"{moto_server.url}/{s3_bucket}/docker/registry/v2/blobs/")
        assert "X-Amz-" not in location
    # moto refuses anonymous reads, so the object behind the rewritten URL is read with
    # credentials: it is the blob, at the key the URL names.
    key = location[len(f"{moto_server.url}/{s3_bucket}/"):]
    assert moto_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read() == data


@pytest.fixture
def cloudfront_key(tmp_path: Path) -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "cloudfront.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return key, str(path)


def test_cloudfront_signed_urls_and_aws_clients_on_s3(
    s3_registry_factory: S3RegistryFactory,
    moto_server: MotoServer,
    s3_bucket: str,
    cloudfront_key: tuple[rsa.RSAPrivateKey, str],
    file_server: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    key, key_path = cloudfront_key
    ranges = tmp_path / "ranges"
    ranges.mkdir()
    (ranges / "ip-ranges.json").write_text(json.dumps({"prefixes": [
        {"ip_prefix": "127.0.0.0/8", "region": "us-east-1", "service": "AMAZON"}]}))
    options = {"baseurl": "https://d111.cloudfront.example/", "privatekey": key_path,
               "keypairid": "APKAEXAMPLE", "duration": "5m", "ipfilteredby": "aws",
               "iprangesurl": file_server(ranges) + "/ip-ranges.json"}
    overrides = {"storage": NO_PURGING, **_middleware("cloudfront", **options)}
    server: S3RegistryProcess = s3_registry_factory(
        s3_bucket, overrides=overrides, s3={"rootdirectory": "/reg"})
    data = os.urandom(100_000)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        repo = random_repo("mwcloudfront")
        digest = push_blob(client, repo, data)
        hexdigest = digest.split(":")[1]
        # From outside AWS (the proxy in front says so): a signed CloudFront URL of the key.
        outside = client.get(blob_path(repo, digest),
                             headers={"X-Forwarded-For": "198.51.100.20, 127.0.0.1"})
        assert outside.status_code == 307
        location = outside.headers["Location"]
        assert location.startswith(
            f"https://d111.cloudfront.example/reg/docker/registry/v2/blobs/sha256/"
            f"{hexdigest[:2]}/{hexdigest}/data?Expires=")
        verify(location, key, "APKAEXAMPLE")
        # From inside AWS (127.0.0.1 is, in these ranges): S3's own URL, which works.
        inside = client.get(blob_path(repo, digest))
        assert inside.status_code == 307
        assert inside.headers["Location"].startswith(moto_server.url)
        assert httpx.get(inside.headers["Location"], timeout=60).content == data
    assert "Traceback" not in server.log_text()


def test_bad_middleware_stops_the_start(registry_factory: RegistryFactory) -> None:
    server = registry_factory(start=False, overrides=_middleware("cloudfront", baseurl="x"))
    with pytest.raises(RegistryStartError):
        server.start(deadline=20)
    assert "middleware.storage.cloudfront" in server.log_text()
