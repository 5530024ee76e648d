"""Storage middleware: signed CloudFront URLs, redirect rewrites, options and client addresses.

Signatures are checked with ``cryptography``'s RSA-SHA1 PKCS#1 v1.5 verification of
the canned policy CloudFront rebuilds from the URL, as CloudFront checks them. The S3
driver under the middleware is built for real (its keys and pre-signed URLs need no
request); the AWS address ranges are served as JSON by a local HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tests.support.backends import s3_params

from dockyard.clientaddr import CLIENT_IP, remote_ip
from dockyard.config.middleware import MiddlewareEntry
from dockyard.storage.drivers.base import AbortsStaleWrites, StorageDriver
from dockyard.storage.drivers.factory import DriverConfigError, create_driver
from dockyard.storage.drivers.middleware import RedirectMiddleware
from dockyard.storage.drivers.middleware.cloudfront import CloudFrontMiddleware

BLOB = "/docker/registry/v2/blobs/sha256/ab/" + "ab" * 32 + "/data"
#: Where the S3 driver's own pre-signed URLs point (nothing listens: they are only read).
S3_URL = "http://127.0.0.1:9/bucket/prefix" + BLOB + "?"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, key: rsa.RSAPrivateKey) -> str:
    """The key as distribution reads it: a PKCS#1 ``RSA PRIVATE KEY`` PEM file."""
    path = tmp_path / "cf.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ))
    return str(path)


class _Ranges(BaseHTTPRequestHandler):
    document: bytes = b""
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.document)))
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ip_ranges() -> Iterator[str]:
    """A local ``ip-ranges.json``: 127.0.0.0/8 in us-east-1, 10.0.0.0/8 in eu-west-1."""
    _Ranges.document = json.dumps({
        "syncToken": "1", "createDate": "2026-01-01-00-00-00",
        "prefixes": [
            {"ip_prefix": "127.0.0.0/8", "region": "us-east-1", "service": "AMAZON"},
            {"ip_prefix": "10.0.0.0/8", "region": "eu-west-1", "service": "AMAZON"},
            {"ip_prefix": "not-a-cidr", "region": "eu-west-1", "service": "AMAZON"},
        ],
        "ipv6_prefixes": [
            {"ipv6_prefix": "2600:1f00::/24", "region": "us-east-1", "service": "AMAZON"},
        ],
    }).encode()
    _Ranges.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ranges)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ip-ranges.json"
    finally:
        server.shutdown()
        server.server_close()


def s3_with(*entries: MiddlewareEntry, root: str = "/prefix", redirect: bool = True
            ) -> StorageDriver:
    params = s3_params("http://127.0.0.1:9", "bucket", root=root)
    return create_driver("s3", params, redirect=redirect, middleware=entries)


def cloudfront(key_file: str, **options: Any) -> MiddlewareEntry:
    base = {"baseurl": "https://d111.cloudfront.example", "privatekey": key_file,
            "keypairid": "K2JCJMDEHXQW5F"}
    return MiddlewareEntry(name="cloudfront", options={**base, **options})


def verify(url: str, key: rsa.RSAPrivateKey, key_pair_id: str = "K2JCJMDEHXQW5F") -> int:
    """Check ``url`` as CloudFront does for a canned policy; its expiry time."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["Key-Pair-Id"] == [key_pair_id]
    expires = int(query["Expires"][0])
    resource = f"{parts.scheme}://{parts.netloc}{parts.path}"
    policy = ('{"Statement":[{"Resource":"' + resource + '","Condition":{"DateLessThan":'
              '{"AWS:EpochTime":' + str(expires) + "}}}]}").encode()
    raw = query["Signature"][0].translate(str.maketrans("-_~", "+=/"))
    key.public_key().verify(base64.b64decode(raw), policy, padding.PKCS1v15(), hashes.SHA1())
    return expires


def redirect_for(driver: StorageDriver, client: str | None, method: str = "GET") -> str | None:
    async def run() -> str | None:
        token = CLIENT_IP.set(client)
        try:
            return await driver.redirect_url(BLOB, method)
        finally:
            CLIENT_IP.reset(token)
            await driver.aclose()

    return asyncio.run(run())


def test_cloudfront_url_is_signed_as_cloudfront_verifies(
    key_file: str, key: rsa.RSAPrivateKey
) -> None:
    driver = s3_with(cloudfront(key_file, duration="30m"))
    before = time.time()
    url = redirect_for(driver, "203.0.113.9")
    assert url is not None
    # baseurl + the object's S3 key (the root directory included, no leading slash).
    assert url.startswith("https://d111.cloudfront.example/prefix" + BLOB + "?Expires=")
    expires = verify(url, key)
    assert before + 30 * 60 - 2 <= expires <= time.time() + 30 * 60 + 1
    # A tampered resource or expiry fails verification.
    with pytest.raises(InvalidSignature):
        verify(url.replace("/data?", "/datb?"), key)
    with pytest.raises(InvalidSignature):
        verify(url.replace(f"Expires={expires}", f"Expires={expires + 1}"), key)


def test_cloudfront_baseurl_without_scheme_and_default_duration(
    key_file: str, key: rsa.RSAPrivateKey
) -> None:
    driver = s3_with(cloudfront(key_file, baseurl="cdn.example/registry"), root="")
    url = redirect_for(driver, None)
    assert url is not None and url.startswith("https://cdn.example/registry/docker/registry/")
    expires = verify(url, key)
    assert abs(expires - (time.time() + 20 * 60)) < 5


def test_cloudfront_ipfilteredby_aws_sends_aws_clients_to_s3(
    key_file: str, key: rsa.RSAPrivateKey, ip_ranges: str
) -> None:
    entry = cloudfront(key_file, ipfilteredby="aws", iprangesurl=ip_ranges)
    inside = redirect_for(s3_with(entry), "127.0.0.5")
    assert inside is not None and inside.startswith(S3_URL), inside
    other_region = redirect_for(s3_with(entry), "10.1.2.3")
    assert other_region is not None and other_region.startswith(S3_URL)
    outside = redirect_for(s3_with(entry), "198.51.100.1")
    assert outside is not None and outside.startswith("https://d111.cloudfront.example/")
    verify(outside, key)
    v6 = redirect_for(s3_with(entry), "2600:1f00::1")
    assert v6 is not None and v6.startswith(S3_URL)


def test_cloudfront_ipfilteredby_awsregion(key_file: str, ip_ranges: str) -> None:
    entry = cloudfront(key_file, ipfilteredby="awsregion", awsregion="EU-West-1, ap-south-1",
                       iprangesurl=ip_ranges)
    assert (redirect_for(s3_with(entry), "10.9.9.9") or "").startswith(S3_URL)
    us = redirect_for(s3_with(entry), "127.0.0.1")
    assert us is not None and us.startswith("https://d111.cloudfront.example/")


def test_cloudfront_ranges_unreachable_means_cloudfront(key_file: str) -> None:
    entry = cloudfront(key_file, ipfilteredby="aws", iprangesurl="http://127.0.0.1:9/x.json")
    url = redirect_for(s3_with(entry), "127.0.0.1")
    assert url is not None and url.startswith("https://d111.cloudfront.example/")


def test_cloudfront_ranges_fetched_once_then_after_updatefrequency(
    key_file: str, ip_ranges: str
) -> None:
    entry = cloudfront(key_file, ipfilteredby="aws", iprangesurl=ip_ranges,
                       updatefrequency="1h")
    driver = s3_with(entry)

    async def run() -> None:
        inner = driver.inner  # type: ignore[attr-defined]
        assert isinstance(inner, CloudFrontMiddleware) and inner.aws is not None
        CLIENT_IP.set("127.0.0.1")
        await asyncio.gather(*(driver.redirect_url(BLOB, "GET") for _ in range(5)))
        assert _Ranges.hits == 1
        inner.aws.update_frequency = 0.0  # due now: refreshed in the background
        await driver.redirect_url(BLOB, "GET")
        assert inner.aws._refresh is not None
        await inner.aws._refresh
        assert _Ranges.hits == 2
        await driver.aclose()

    asyncio.run(run())


def test_cloudfront_only_redirects_downloads_and_passes_other_drivers(key_file: str) -> None:
    assert redirect_for(s3_with(cloudfront(key_file)), None, method="PUT") is None
    fs = create_driver("inmemory", {}, middleware=[cloudfront(key_file)])
    assert redirect_for(fs, None) is None  # S3 only, as distribution (warned at start)


def test_redirect_disable_leaves_middleware_out(key_file: str) -> None:
    driver = s3_with(cloudfront(key_file), redirect=False)
    assert redirect_for(driver, None) is None


@pytest.mark.parametrize(
    ("baseurl", "expected"),
    [
        ("https://mirror.example", "https://mirror.example" + BLOB),
        ("http://mirror.example:8080/base/", "http://mirror.example:8080/base" + BLOB),
        ("https://mirror.example/a/b", "https://mirror.example/a/b" + BLOB),
    ],
)
def test_redirect_rewrites_to_baseurl(baseurl: str, expected: str) -> None:
    entry = MiddlewareEntry(name="redirect", options={"baseurl": baseurl})
    driver = create_driver("inmemory", {}, middleware=[entry])
    assert isinstance(driver.inner, RedirectMiddleware)
    assert redirect_for(driver, None) == expected


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, r"^middleware\.storage\.nope: unknown storage middleware"),
        ("redirect", {}, r"^middleware\.storage\.redirect\.baseurl: missing"),
        ("redirect", {"baseurl": "mirror.example"}, r"\.baseurl: no scheme"),
        ("redirect", {"baseurl": "https://"}, r"\.baseurl: no host"),
        ("redirect", {"baseurl": "https://x", "extra": 1}, r"\.extra: unsupported option"),
        ("cloudfront", {"baseurl": "x", "keypairid": "k"}, r"cloudfront\.privatekey: missing"),
        ("cloudfront", {"baseurl": "x", "keypairid": "k", "privatekey": "/nonexistent"},
         r"cloudfront\.privatekey: cannot read"),
    ],
)
def test_option_errors_name_the_key(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message):
        create_driver("inmemory", {}, middleware=[MiddlewareEntry(name=name, options=options)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ipfilteredby": "everyone"}, r"cloudfront\.ipfilteredby: expected one of none, aws"),
        ({"ipfilteredby": "awsregion"}, r"cloudfront\.awsregion: required"),
        ({"duration": "soon"}, r"cloudfront\.duration: "),
        ({"updatefrequency": "0s", "ipfilteredby": "aws"}, r"cloudfront\.updatefrequency: "),
    ],
)
def test_cloudfront_option_errors(key_file: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message):
        s3_with(cloudfront(key_file, **options))


def test_cloudfront_refuses_a_key_that_is_not_rsa(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(DriverConfigError, match=r"privatekey: CloudFront key pairs are RSA"):
        s3_with(cloudfront(str(path)))


@pytest.mark.parametrize(
    ("headers", "peer", "expected"),
    [
        ({}, "192.0.2.1", "192.0.2.1"),
        ({"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}, "127.0.0.1", "203.0.113.7"),
        ({"X-Forwarded-For": " 2001:db8::1 ,10.0.0.1"}, "127.0.0.1", "2001:db8::1"),
        ({"X-Forwarded-For": "unknown", "X-Real-Ip": "198.51.100.2"}, "127.0.0.1",
         "198.51.100.2"),
        ({"X-Real-Ip": "garbage"}, "127.0.0.1", "127.0.0.1"),
        ({}, None, None),
    ],
)
def test_remote_ip_as_distribution(
    headers: dict[str, str], peer: str | None, expected: str | None
) -> None:
    assert remote_ip(headers, peer) == expected


def test_middleware_still_lets_purging_abort_stale_multipart_uploads() -> None:
    """Upload purging finds an object store's writes through the wrapper (none elsewhere)."""
    entry = MiddlewareEntry(name="redirect", options={"baseurl": "https://mirror.example"})
    assert isinstance(s3_with(entry).inner, AbortsStaleWrites)  # type: ignore[attr-defined]
    memory = create_driver("inmemory", {}, middleware=[entry]).inner
    assert isinstance(memory, AbortsStaleWrites)
    assert asyncio.run(memory.abort_stale_multipart_uploads(datetime.now(UTC))) == 0
