"""Real clients against dockyard running several worker processes on one port.

skopeo and oras-py keep their connections alive, so one connection stays on one worker;
three clients at once (two skopeo pushes and an oras-py upload of 64 chunks, in parallel)
open several connections, which the kernel hands to either worker. Every image must come
back whole. (That one upload's chunks may move between workers is proven by the API tests,
which open a new connection per request.)
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import oras.client
import pytest
from tests.support.interop import Layout, Skopeo, random_repo

from .conftest import Images, ServerFactory

pytestmark = pytest.mark.interop


def test_clients_in_parallel_against_two_workers(
    server_factory: ServerFactory, skopeo: Skopeo, images: Images, tmp_path: Path
) -> None:
    server = server_factory("dockyard", extra_args=["--workers", "2"])
    base = f"127.0.0.1:{server.port}"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(1024 * 1024))
    repos = {name: random_repo(f"workers-{name}") for name in ("single", "multi", "oras")}
    client = oras.client.OrasClient(hostname=base, insecure=True)

    def push_single() -> None:
        skopeo.copy(images.single.ref, f"docker://{base}/{repos['single']}:v1")

    def push_multi() -> None:
        skopeo.copy(images.index.ref, f"docker://{base}/{repos['multi']}:multi", "--all")

    def push_oras() -> None:
        client.push(
            f"{base}/{repos['oras']}:blob",
            files=[str(payload)],
            disable_path_validation=True,
            do_chunked=True,
            chunk_size=16 * 1024,  # 64 PATCH requests
            quiet=True,
        )

    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(f) for f in (push_single, push_multi, push_oras)]:
            future.result()

    assert "2 workers" in server.log_text()
    out = Layout(tmp_path / "out")
    skopeo.copy(f"docker://{base}/{repos['single']}:v1", out.ref("single"))
    assert out.descriptor("single")["digest"] == images.single.manifest_digest
    skopeo.copy(f"docker://{base}/{repos['multi']}:multi", out.ref("multi"), "--all")
    assert out.descriptor("multi")["digest"] == images.index.digest
    for image in (images.single, *images.index.images.values()):
        for digest in image.blob_digests:
            assert out.blob(digest) == image.layout.blob(digest)
    pulled = client.pull(f"{base}/{repos['oras']}:blob", outdir=str(tmp_path / "oras"))
    assert [Path(p).read_bytes() for p in pulled] == [payload.read_bytes()]
    assert json.loads(out.blob(images.index.digest)) == json.loads(images.index.raw)
