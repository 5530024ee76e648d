"""Server-wide settings seen through the API: read-only mode, http.prefix, http.host."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from tests.support.api import (
    assert_error,
    deviates_on_distribution,
    digest_of,
    push_blob,
    random_repo,
    with_query,
)
from tests.support.servers import RegistryProcess

Factory = Callable[..., RegistryProcess]
ClientFactory = Callable[[RegistryProcess], httpx.Client]


def _manifest(config_digest: str, config_size: int) -> bytes:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [],
    }).encode()


@deviates_on_distribution(
    "read-only writes get 405 with a text/plain body and Allow: GET, HEAD, no error envelope"
)
def test_read_only_refuses_writes_and_serves_reads(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    repo = random_repo()
    config = b"{}"
    with client_factory(server) as client:
        digest = push_blob(client, repo, config)
        body = _manifest(digest, len(config))
        assert client.put(
            f"/v2/{repo}/manifests/v1", content=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ).status_code == 201
    server.reconfigure({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    server.restart()
    with client_factory(server) as client:
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == config
        oci = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        assert client.get(f"/v2/{repo}/manifests/v1", headers=oci).content == body
        assert_error(client.post(f"/v2/{repo}/blobs/uploads/"), 405, "UNSUPPORTED")
        monolithic = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(b"x")}, content=b"x"
        )
        assert_error(monolithic, 405, "UNSUPPORTED")
        put = client.put(
            f"/v2/{repo}/manifests/v2", content=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert_error(put, 405, "UNSUPPORTED")
        assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 405, "UNSUPPORTED")
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert tags == ["v1"]


def test_prefix_moves_every_route_and_location(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides={"http": {"prefix": "/registry/"}})
    repo = random_repo()
    with client_factory(server) as client:
        assert client.get("/registry/v2/").status_code == 200
        assert client.get("/v2/").status_code == 404
        start = client.post(f"/registry/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        location = start.headers["Location"]
        assert f"/registry/v2/{repo}/blobs/uploads/" in location
        data = b"prefixed"
        done = client.put(with_query(location, digest=digest_of(data)), content=data)
        assert done.status_code == 201, done.text
        assert done.headers["Location"].endswith(f"/registry/v2/{repo}/blobs/{digest_of(data)}")
        assert client.get(f"/registry/v2/{repo}/blobs/{digest_of(data)}").content == data


def test_host_setting_makes_absolute_locations(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides={"http": {"host": "https://registry.example.test"}})
    with client_factory(server) as client:
        start = client.post(f"/v2/{random_repo()}/blobs/uploads/")
        assert start.status_code == 202
        assert start.headers["Location"].startswith("https://registry.example.test/v2/")
