"""``immutabletags``: a protected tag, once it exists, is neither moved nor deleted.

Raw HTTP against a real dockyard process: the refusal is ``DENIED`` (403) with the
OCI error envelope naming the rule; re-pushing the digest the tag holds is accepted;
tags the rules do not match behave as usual. (skopeo: tests/interop/test_tag_policies.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
from tests.support.api import assert_error, deviates_on_distribution, random_repo
from tests.support.manifests import get_manifest, image, manifest_path, put_manifest

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

pytestmark = deviates_on_distribution("no immutable tags (a dockyard extension)")

RULES = {
    "storage": {"delete": {"enabled": True}},
    "immutabletags": [
        {"repositories": ["prod/**"], "tags": [r"^v\d+\.\d+\.\d+$"]},
        {"repositories": ["*/frozen-*"], "tags": []},
    ],
}


def denied(response: httpx.Response, rule: str, tag: str) -> None:
    assert_error(response, 403, "DENIED")
    error = response.json()["errors"][0]
    assert rule in error["message"], error
    assert f"tag {tag} " in error["message"], error
    assert error["detail"]["rule"] == rule
    assert error["detail"]["tag"] == tag


def test_immutable_tag_cannot_move_or_go(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides=RULES)
    client = client_factory(server)
    repo = random_repo("prod/app")
    first, second = image(client, repo), image(client, repo)
    put_manifest(client, repo, "v1.0.0", first)

    # Moving it: refused, and the tag still names the first manifest.
    response = put_manifest(client, repo, "v1.0.0", second, expect=None)
    denied(response, "immutabletags[0]", "v1.0.0")
    assert response.json()["errors"][0]["detail"]["digest"] == first.digest
    assert get_manifest(client, repo, "v1.0.0").headers["Docker-Content-Digest"] == first.digest

    # The same digest again is an idempotent re-push.
    put_manifest(client, repo, "v1.0.0", first)

    # Deleting the tag, or the manifest it names (which would take the tag along): refused.
    denied(client.delete(manifest_path(repo, "v1.0.0")), "immutabletags[0]", "v1.0.0")
    denied(client.delete(manifest_path(repo, first.digest)), "immutabletags[0]", "v1.0.0")
    assert get_manifest(client, repo, first.digest).status_code == 200

    # A tag the patterns do not match is mutable as ever.
    put_manifest(client, repo, "latest", first)
    put_manifest(client, repo, "latest", second)
    put_manifest(client, repo, "v1.0", first)
    put_manifest(client, repo, "v1.0", second)
    assert client.delete(manifest_path(repo, "v1.0")).status_code == 202
    # ... and so is a manifest no immutable tag names.
    assert client.delete(manifest_path(repo, second.digest)).status_code == 202

    # Pushing the second manifest by digest, then under a fresh immutable tag: fine.
    put_manifest(client, repo, second.digest, second)
    put_manifest(client, repo, "v2.0.0", second)


def test_rules_match_repositories_by_glob(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides=RULES)
    client = client_factory(server)
    dev = random_repo("dev/app")  # not under prod/: v1.0.0 moves freely
    a, b = image(client, dev), image(client, dev)
    put_manifest(client, dev, "v1.0.0", a)
    put_manifest(client, dev, "v1.0.0", b)

    frozen = f"team/frozen-{random_repo('x').split('/')[1]}"  # every tag immutable
    a, b = image(client, frozen), image(client, frozen)
    put_manifest(client, frozen, "anything", a)
    denied(put_manifest(client, frozen, "anything", b, expect=None),
           "immutabletags[1]", "anything")
    nested = f"team/sub/frozen-{random_repo('x').split('/')[1]}"  # "*" stops at "/"
    a, b = image(client, nested), image(client, nested)
    put_manifest(client, nested, "anything", a)
    put_manifest(client, nested, "anything", b)


def test_without_rules_tags_move(registry_factory: RegistryFactory,
                                 client_factory: ClientFactory) -> None:
    server = registry_factory(overrides={"storage": {"delete": {"enabled": True}}})
    client = client_factory(server)
    repo = random_repo("prod/app")
    a, b = image(client, repo), image(client, repo)
    put_manifest(client, repo, "v1.0.0", a)
    put_manifest(client, repo, "v1.0.0", b)
    assert client.delete(manifest_path(repo, "v1.0.0")).status_code == 202
