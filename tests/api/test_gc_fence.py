"""The fence seen over HTTP: while the collector is sweeping a blob (its row in the
index database), a manifest PUT naming that blob is refused with
MANIFEST_BLOB_UNKNOWN, never stored; once the sweep moves on it is accepted. Without
``storage.maintenance.garbagecollect.enabled`` nothing is fenced. (The interleavings
themselves: tests/unit/test_gc_fence.py; under load: tests/integration/test_gc_online.py.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
from tests.support.api import assert_error, deviates_on_distribution, random_repo
from tests.support.manifests import image, put_manifest

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

pytestmark = deviates_on_distribution("no online garbage collection (dockyard's)")


def sql(server: RegistryProcess, statement: str, *params: object) -> None:
    path = server.root / "dockyard-index.db"
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
        db.execute(statement, params)


def test_put_naming_a_blob_being_swept_is_refused(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides={"storage": {"maintenance": {"garbagecollect": {
        "enabled": True, "interval": 0}}}})
    client = client_factory(server)
    repo = random_repo("fence")
    built = image(client, repo, layers=2)
    layer = built.blobs[1]
    sql(server, "INSERT INTO gc_sweeping (digest, since) VALUES (?, ?)", layer, time.time())
    response = put_manifest(client, repo, "v1", built, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == layer
    assert client.get(f"/v2/{repo}/manifests/{built.digest}").status_code == 404
    sql(server, "DELETE FROM gc_sweeping")
    put_manifest(client, repo, "v1", built)
    # The claims are gone once the PUT answered.
    with contextlib.closing(sqlite3.connect(server.root / "dockyard-index.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM gc_claims").fetchone() == (0,)


def test_without_online_gc_nothing_is_fenced(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("fence")
    put_manifest(client, repo, "v1", image(client, repo))
    with contextlib.closing(sqlite3.connect(server.root / "dockyard-index.db")) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "gc_claims" not in tables
