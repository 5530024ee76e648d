"""``dockyard retention`` on a registry serving over HTTP, with controlled times.

Images are pushed over HTTP; their push (and pull) times are then set where the job
reads them: the metadata index (SQLite beside the data, the default) and the link
files (``current`` of each tag, each revision link: what it reads without an index or
when the index does not know a time). The command runs beside the running server
with a ``retention`` section naming only the test's own repository, and what is left
is checked over HTTP. Each rule alone, rules combined, untagged manifests and
referrers, immutable tags, a dry run that deletes nothing, the server's interval.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from tests.support.api import deviates_on_distribution, random_repo
from tests.support.manifests import (
    OCI_MANIFEST,
    Built,
    get_manifest,
    image,
    manifest_path,
    put_manifest,
    repo_dir,
)

if TYPE_CHECKING:
    from tests.support.servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]

pytestmark = deviates_on_distribution("no retention policies (a dockyard extension)")

SRC = Path(__file__).resolve().parents[2] / "src"
DAY = 86400.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, registry_secret: str
           ) -> Iterator[RegistryProcess]:
    from tests.support.servers import RegistryProcess

    process = RegistryProcess(tmp_path_factory.mktemp("retention"), kind="dockyard",
                              secret=registry_secret,
                              overrides={"storage": {"delete": {"enabled": True}}})
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(server: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


class Repo:
    """A fresh repository of the server, with push times under the test's control."""

    def __init__(self, server: RegistryProcess, client: httpx.Client) -> None:
        self.server, self.client = server, client
        self.name = random_repo("retention")
        self.dir = repo_dir(server.root, self.name)

    def push(self, tag: str | None, days_ago: float, manifest: Built | None = None,
             **kwargs: Any) -> Built:
        built = manifest or image(self.client, self.name, **kwargs)
        put_manifest(self.client, self.name, tag or built.digest, built)
        when = time.time() - days_ago * DAY
        hex_ = built.digest.split(":", 1)[1]
        os.utime(self.dir / "_manifests" / "revisions" / "sha256" / hex_ / "link", (when, when))
        if tag is not None:
            os.utime(self.dir / "_manifests" / "tags" / tag / "current" / "link", (when, when))
        self.sql("UPDATE manifests SET pushed_at = ? WHERE repository = ? AND digest = ?",
                 when, built.digest)
        if tag is not None:
            self.sql("UPDATE tags SET pushed_at = ? WHERE repository = ? AND tag = ?", when, tag)
        return built

    def pulled(self, manifest: Built, days_ago: float) -> None:
        self.sql("UPDATE manifests SET last_pull = ? WHERE repository = ? AND digest = ?",
                 time.time() - days_ago * DAY, manifest.digest)

    def sql(self, statement: str, value: float, key: str) -> None:
        with contextlib.closing(sqlite3.connect(self.server.root / "dockyard-index.db",
                                                timeout=30)) as db, db:
            changed = db.execute(statement, (value, self.name, key)).rowcount
        assert changed == 1, (statement, key)

    def tags(self) -> set[str]:
        response = self.client.get(f"/v2/{self.name}/tags/list")
        if response.status_code == 404:
            return set()
        assert response.status_code == 200, response.text
        return set(response.json()["tags"] or ())

    def has(self, manifest: Built) -> bool:
        status = get_manifest(self.client, self.name, manifest.digest).status_code
        assert status in (200, 404)
        return status == 200

    def retention(self, policy: Mapping[str, Any], *args: str, delay: str = "24h",
                  extra: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        config = dict(self.server.config)
        config["retention"] = {"delay": delay, "policies": [
            {"repositories": [self.name], **policy},
        ]}
        for key, value in (extra or {}).items():
            if key == "retention":
                config["retention"] = {**config["retention"], **value}
            else:
                config[key] = value
        path = self.server.workdir / f"retention-{os.urandom(4).hex()}.yml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "dockyard", "retention", str(path), *args],
            capture_output=True, text=True, timeout=300, check=False,
            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        return done


@pytest.fixture
def repo(server: RegistryProcess, client: httpx.Client) -> Repo:
    return Repo(server, client)


def push_series(repo: Repo) -> dict[str, Built]:
    """v1..v3 and dev-a, dev-b pushed 30, 20, 10, 3 and 2 days ago."""
    ages = {"v1": 30, "v2": 20, "v3": 10, "dev-a": 3, "dev-b": 2}
    return {tag: repo.push(tag, age) for tag, age in ages.items()}


def test_policy_without_keeptags_keeps_tags_and_drops_old_untagged(repo: Repo) -> None:
    pushed = push_series(repo)
    old = repo.push(None, 5)
    young = repo.push(None, 0.1)
    done = repo.retention({})
    assert repo.tags() == set(pushed)
    assert not repo.has(old) and repo.has(young)
    assert f"deleted manifest {old.digest}: untagged for more than retention.delay" in done.stderr
    assert "deleted 0 tags and 1 manifest" in done.stdout


def test_patterns_alone(repo: Repo) -> None:
    pushed = push_series(repo)
    done = repo.retention({"keeptags": [{"patterns": ["^v"]}]})
    assert repo.tags() == {"v1", "v2", "v3"}
    assert "deleted tag dev-a" in done.stderr and "matches no keeptags patterns" in done.stderr
    assert not repo.has(pushed["dev-a"]) and repo.has(pushed["v1"])


def test_pushed_within(repo: Repo) -> None:
    push_series(repo)
    done = repo.retention({"keeptags": [{"pushedwithin": "360h"}]})
    assert repo.tags() == {"v3", "dev-a", "dev-b"}
    assert "keeptags[0]: no rule keeps it" in done.stderr


def test_most_recently_pushed_count(repo: Repo) -> None:
    push_series(repo)
    repo.retention({"keeptags": [{"mostrecentlypushedcount": 2}]})
    assert repo.tags() == {"dev-a", "dev-b"}


def test_rules_combined(repo: Repo) -> None:
    push_series(repo)
    repo.retention({"keeptags": [
        {"patterns": ["^v"], "mostrecentlypushedcount": 1, "pushedwithin": "600h"},
        {"patterns": ["^dev"], "pushedwithin": "60h"},
    ]})
    # v3: the newest v*; v2: pushed 20 days ago, within 25 days; dev-b: within 60h.
    assert repo.tags() == {"v2", "v3", "dev-b"}


def test_pulled_within_and_most_recently_pulled(repo: Repo) -> None:
    pushed = push_series(repo)
    repo.pulled(pushed["v1"], 1)
    repo.pulled(pushed["v2"], 12)
    repo.pulled(pushed["v3"], 40)
    # pulledwithin 7d: v1 (pulled), dev-a and dev-b (pushed within 7d).
    repo.retention({"keeptags": [{"patterns": ["^v"], "pulledwithin": "168h"},
                                 {"patterns": ["^dev"]}]})
    assert repo.tags() == {"v1", "dev-a", "dev-b"}


def test_most_recently_pulled_count(repo: Repo) -> None:
    pushed = push_series(repo)
    repo.pulled(pushed["v2"], 12)
    repo.pulled(pushed["dev-a"], 1)
    done = repo.retention({"keeptags": [{"mostrecentlypulledcount": 2}]})
    assert repo.tags() == {"v2", "dev-a"}
    assert "deleted tag v1" in done.stderr


def test_dry_run_deletes_nothing(repo: Repo) -> None:
    pushed = push_series(repo)
    before = sorted(p.relative_to(repo.dir) for p in repo.dir.rglob("*"))
    policy = {"keeptags": [{"mostrecentlypushedcount": 1}]}
    for done in (repo.retention(policy, "--dry-run"),
                 repo.retention(policy, extra={"retention": {"dryrun": True}})):
        assert "would delete tag v1" in done.stderr
        assert "would delete 4 tags and 4 manifests" in done.stdout
    assert sorted(p.relative_to(repo.dir) for p in repo.dir.rglob("*")) == before
    assert repo.tags() == set(pushed)


def test_children_referrers_and_immutable_tags(repo: Repo) -> None:
    from tests.support.manifests import index

    children = [repo.push(None, 40, media_type=OCI_MANIFEST) for _ in range(2)]
    multi = repo.push("multi", 40, index(children))
    signature = repo.push(None, 40, media_type=OCI_MANIFEST, subject=multi,
                          artifact_type="application/vnd.example.sig")
    old = repo.push("old", 40, media_type=OCI_MANIFEST)
    old_sig = repo.push(None, 40, media_type=OCI_MANIFEST, subject=old,
                        artifact_type="application/vnd.example.sig")
    pinned = repo.push("v1.0.0", 40)
    done = repo.retention(
        {"keeptags": [{"patterns": ["^multi$"]}]},
        extra={"immutabletags": [{"repositories": [repo.name], "tags": [r"^v\d"]}]},
    )
    assert repo.tags() == {"multi", "v1.0.0"}
    assert all(repo.has(m) for m in (*children, multi, signature, pinned))
    assert not repo.has(old) and not repo.has(old_sig)
    assert f"deleted manifest {old_sig.digest}: referrer of {old.digest}" in done.stderr
    # The referrers API no longer lists the deleted signature.
    listed = repo.client.get(f"/v2/{repo.name}/referrers/{old.digest}").json()["manifests"]
    assert listed == []
    # The index saw every delete.
    verify = subprocess.run(
        [sys.executable, "-m", "dockyard", "index", "verify", str(repo.server.config_path)],
        capture_output=True, text=True, timeout=300, check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert verify.returncode == 0, (verify.stdout, verify.stderr)


def test_policy_for_other_repositories_changes_nothing(repo: Repo) -> None:
    """A policy that names no repository of the server changes nothing."""
    pushed = push_series(repo)
    other = Repo(repo.server, repo.client)
    other.push("x", 90)
    repo.retention({"keeptags": [{"patterns": ["^nothing$"]}]} | {"repositories": ["nope/*"]})
    assert repo.tags() == set(pushed) and other.tags() == {"x"}
    assert repo.client.delete(manifest_path(other.name, "x")).status_code == 202


# -- the server applies it on its interval -------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)


def test_server_applies_retention_on_its_interval(
    tmp_path_factory: pytest.TempPathFactory, registry_secret: str
) -> None:
    from tests.support.servers import RegistryProcess

    process = RegistryProcess(
        tmp_path_factory.mktemp("retention-interval"), kind="dockyard", secret=registry_secret,
        overrides={"storage": {"delete": {"enabled": False}},
                   "retention": {"interval": "1s", "delay": "1h", "policies": [
            {"repositories": ["interval/**"], "keeptags": [{"pushedwithin": "240h"}]},
        ]}},
    )
    process.start()
    try:
        with httpx.Client(base_url=process.url, timeout=60) as client:
            repo = Repo(process, client)
            repo.name = random_repo("interval")
            repo.dir = repo_dir(process.root, repo.name)
            old = repo.push("old", 30)
            new = repo.push("new", 1)
            wait_for(lambda: repo.tags() == {"new"}, "the old tag to go")
            wait_for(lambda: not repo.has(old), "its manifest to go")
            assert repo.has(new)
            # Deletes stay off for clients (storage.delete.enabled is false).
            assert client.delete(manifest_path(repo.name, "new")).status_code == 405
        wait_for(lambda: "retention: 1 repository under a policy" in process.log_text(),
                 "the summary in the log")
        assert f"deleted tag old ({old.digest})" in process.log_text()
    finally:
        process.stop()
