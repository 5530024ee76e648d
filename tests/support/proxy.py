"""Helpers of the pull-through cache's tests: an upstream, pushes to it, where the
cache keeps what it fetched."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tests.support.auth import write_htpasswd
from tests.support.interop import MANIFEST_ACCEPT, Skopeo
from tests.support.servers import RegistryProcess

USER, PASSWORD = "mirror", "s3cret-upstream"
V2 = "docker/registry/v2"


def docker_ref(server: RegistryProcess, repo: str, ref: str) -> str:
    sep = "@" if ref.startswith("sha256:") else ":"
    return f"docker://127.0.0.1:{server.port}/{repo}{sep}{ref}"


def start_upstream(
    server_factory: Callable[..., RegistryProcess], tmp_path: Path
) -> RegistryProcess:
    """docker-registry 2.8 requiring a login (htpasswd)."""
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {USER: PASSWORD})
    return server_factory(
        "distribution",
        overrides={"auth": {"htpasswd": {"realm": "upstream", "path": str(htpasswd)}}},
    )


def push(skopeo: Skopeo, src: str, upstream: RegistryProcess, repo: str, tag: str) -> None:
    skopeo.copy(src, docker_ref(upstream, repo, tag), "--all", f"--dest-creds={USER}:{PASSWORD}")


def proxy_config(upstream_url: str, **extra: Any) -> dict[str, Any]:
    return {"proxy": {"remoteurl": upstream_url, "username": USER, "password": PASSWORD, **extra}}


def upstream_manifest(upstream: RegistryProcess, repo: str, ref: str) -> httpx.Response:
    response = httpx.get(
        f"{upstream.url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": MANIFEST_ACCEPT},
        auth=(USER, PASSWORD),
    )
    assert response.status_code == 200, response.text
    return response


def blob_file(server: RegistryProcess, digest: str) -> Path:
    alg, hexpart = digest.split(":", 1)
    return server.root / V2 / "blobs" / alg / hexpart[:2] / hexpart / "data"


def layer_link(server: RegistryProcess, repo: str, digest: str) -> Path:
    alg, hexpart = digest.split(":", 1)
    return server.root / V2 / "repositories" / repo / "_layers" / alg / hexpart / "link"


def push_blob(upstream: RegistryProcess, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=upstream.url, auth=(USER, PASSWORD), timeout=60) as client:
        start = client.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = client.put(f"{location}{separator}digest={digest}", content=data)
        assert done.status_code == 201, done.text
    return digest
