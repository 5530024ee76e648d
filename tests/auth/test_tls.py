"""``http.tls``: HTTPS with a CA made in the test, ``minimumtls``, mutual TLS (``clientcas``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.auth import PKI, IssuedCert, Skopeo, TLSRegistry, sha256_digest, unique_repo

from .conftest import ImageFactory

pytestmark = pytest.mark.interop

CURL = shutil.which("curl")


def _tls_registry(
    tmp_path_factory: pytest.TempPathFactory,
    target: str,
    pki: PKI,
    server: IssuedCert,
    *,
    client: IssuedCert | None = None,
    **tls: Any,
) -> TLSRegistry:
    registry = TLSRegistry(
        tmp_path_factory.mktemp("registry"),
        kind=target,  # type: ignore[arg-type]
        client_ssl=pki.client_context(client),
        overrides={
            "http": {"tls": {"certificate": str(server.cert), "key": str(server.key), **tls}}
        },
    )
    registry.start()
    return registry


@pytest.fixture(scope="module")
def server_cert(pki: PKI) -> IssuedCert:
    return pki.issue("registry-server", server=True)


@pytest.fixture(scope="module")
def client_cert(pki: PKI) -> IssuedCert:
    return pki.issue("registry-client", server=False)


@pytest.fixture(scope="module")
def https(
    tmp_path_factory: pytest.TempPathFactory, target: str, pki: PKI, server_cert: IssuedCert
) -> Iterator[TLSRegistry]:
    registry = _tls_registry(tmp_path_factory, target, pki, server_cert)
    try:
        yield registry
    finally:
        registry.stop()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    if CURL is None:
        pytest.fail("curl is missing: apt-get install -y curl")
    return subprocess.run(
        [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def negotiated_version(registry: TLSRegistry, ctx: ssl.SSLContext) -> str | None:
    with (
        socket.create_connection(("127.0.0.1", registry.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


# -- plain HTTPS -------------------------------------------------------------------------


def test_https_with_ca_from_the_test(https: TLSRegistry, pki: PKI) -> None:
    ok = curl("--cacert", str(pki.ca_path), f"{https.url}/v2/")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("200")
    # Without our CA the certificate is not trusted (curl exit 60).
    untrusted = curl(f"{https.url}/v2/")
    assert untrusted.returncode == 60, untrusted.stderr
    # Plain HTTP on the TLS port is no way in (dockyard hangs up, distribution says 400).
    try:
        response = httpx.get(f"http://127.0.0.1:{https.port}/v2/", timeout=5)
    except httpx.HTTPError:
        pass
    else:
        assert response.status_code == 400


def test_skopeo_push_and_pull_over_tls(
    https: TLSRegistry,
    pki: PKI,
    skopeo: Skopeo,
    make_image: ImageFactory,
    tmp_path: Path,
) -> None:
    cert_dir = pki.cert_dir("ca-only")
    image = make_image()
    dest = f"docker://{https.host}/{unique_repo('tls')}:v1"

    # Without the CA skopeo refuses the server, as it should.
    refused = skopeo.copy(image.ref, dest, "--dest-tls-verify=true")
    assert refused.returncode != 0
    assert "x509" in refused.stderr or "certificate" in refused.stderr, refused.stderr

    pushed = skopeo.copy(
        image.ref, dest, "--dest-tls-verify=true", "--dest-cert-dir", str(cert_dir)
    )
    assert pushed.returncode == 0, pushed.stderr
    out = tmp_path / "pulled"
    pulled = skopeo.copy(
        dest, f"dir:{out}", "--src-tls-verify=true", "--src-cert-dir", str(cert_dir)
    )
    assert pulled.returncode == 0, pulled.stderr
    assert sha256_digest((out / "manifest.json").read_bytes()) == image.manifest_digest
    layer = out / image.layer_digest.removeprefix("sha256:")
    assert sha256_digest(layer.read_bytes()) == image.layer_digest


def test_5mib_blob_round_trip_over_tls(https: TLSRegistry, pki: PKI) -> None:
    """Blob GETs over TLS cannot use zero-copy sendfile; the copying path must be exact."""
    data = os.urandom(5 * 1024 * 1024 + 123)
    digest = sha256_digest(data)
    repo = unique_repo("tls")
    with httpx.Client(base_url=https.url, verify=pki.client_context(), timeout=60) as http:
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(https.url).join(started.headers["Location"])
        done = http.put(location.copy_merge_params({"digest": digest}), content=data)
        assert done.status_code == 201, done.text

        head = http.head(f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == len(data)

        hasher = hashlib.sha256()
        size = 0
        with http.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
            assert response.status_code == 200
            assert response.headers["Docker-Content-Digest"] == digest
            for chunk in response.iter_bytes():
                hasher.update(chunk)
                size += len(chunk)
        assert size == len(data)
        assert f"sha256:{hasher.hexdigest()}" == digest

        # A range from the middle comes from the same path.
        part = http.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=3000000-3000999"})
        if part.status_code == 206:
            assert part.content == data[3000000:3001000]
        else:
            assert part.status_code == 200 and part.content == data


def test_tls12_client_accepted_by_default(https: TLSRegistry, pki: PKI) -> None:
    """Control for minimumtls: the default (tls1.2) serves a TLS 1.2-only client."""
    ctx = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    assert negotiated_version(https, ctx) == "TLSv1.2"


# -- minimumtls --------------------------------------------------------------------------


def test_minimumtls_13_refuses_tls12_client(
    tmp_path_factory: pytest.TempPathFactory, target: str, pki: PKI, server_cert: IssuedCert
) -> None:
    registry = _tls_registry(tmp_path_factory, target, pki, server_cert, minimumtls="tls1.3")
    try:
        tls12 = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        with pytest.raises(ssl.SSLError):
            negotiated_version(registry, tls12)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{registry.url}/v2/", verify=tls12, timeout=10)
        refused = curl("--cacert", str(pki.ca_path), "--tls-max", "1.2", f"{registry.url}/v2/")
        assert refused.returncode == 35, refused.stderr  # SSL connect error

        assert negotiated_version(registry, pki.client_context()) == "TLSv1.3"
        ok = curl("--cacert", str(pki.ca_path), f"{registry.url}/v2/")
        assert ok.stdout.startswith("200"), ok.stderr
    finally:
        registry.stop()


# -- mutual TLS --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls(
    tmp_path_factory: pytest.TempPathFactory,
    target: str,
    pki: PKI,
    server_cert: IssuedCert,
    client_cert: IssuedCert,
) -> Iterator[TLSRegistry]:
    registry = _tls_registry(
        tmp_path_factory,
        target,
        pki,
        server_cert,
        client=client_cert,
        clientcas=[str(pki.ca_path)],
    )
    try:
        yield registry
    finally:
        registry.stop()


def test_mutual_tls_refuses_client_without_certificate(
    mtls: TLSRegistry, pki: PKI, client_cert: IssuedCert, tmp_path: Path
) -> None:
    url = f"{mtls.url}/v2/"
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, verify=pki.client_context(), timeout=10)
    refused = curl("--cacert", str(pki.ca_path), url)
    assert refused.returncode != 0, refused.stdout

    # A certificate from another CA is refused too.
    rogue = PKI(tmp_path / "rogue", name="rogue CA").issue("rogue-client", server=False)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, verify=pki.client_context(rogue), timeout=10)
    refused = curl(
        "--cacert", str(pki.ca_path), "--cert", str(rogue.cert), "--key", str(rogue.key), url
    )
    assert refused.returncode != 0, refused.stdout

    # A certificate signed by a CA of clientcas is accepted.
    response = httpx.get(url, verify=pki.client_context(client_cert), timeout=10)
    assert response.status_code == 200
    ok = curl(
        "--cacert",
        str(pki.ca_path),
        "--cert",
        str(client_cert.cert),
        "--key",
        str(client_cert.key),
        url,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("200"), ok.stderr
    assert mtls.running


def test_skopeo_with_client_certificate(
    mtls: TLSRegistry,
    pki: PKI,
    client_cert: IssuedCert,
    skopeo: Skopeo,
    make_image: ImageFactory,
) -> None:
    image = make_image()
    dest = f"docker://{mtls.host}/{unique_repo('mtls')}:v1"
    without = skopeo.copy(
        image.ref, dest, "--dest-tls-verify=true", "--dest-cert-dir", str(pki.cert_dir("ca"))
    )
    assert without.returncode != 0
    with_cert = skopeo.copy(
        image.ref,
        dest,
        "--dest-tls-verify=true",
        "--dest-cert-dir",
        str(pki.cert_dir("with-client", client_cert)),
    )
    assert with_cert.returncode == 0, with_cert.stderr


# -- ciphersuites ------------------------------------------------------------------------


def test_ciphersuites_restrict_tls12(
    tmp_path_factory: pytest.TempPathFactory, target: str, pki: PKI, server_cert: IssuedCert
) -> None:
    registry = _tls_registry(
        tmp_path_factory,
        target,
        pki,
        server_cert,
        ciphersuites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
    )
    try:
        allowed = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        allowed.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with (
            socket.create_connection(("127.0.0.1", registry.port), timeout=10) as raw,
            allowed.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
        other = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        other.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305")
        with pytest.raises(ssl.SSLError):
            negotiated_version(registry, other)
    finally:
        registry.stop()
