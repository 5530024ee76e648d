"""Browsing in a real browser: repositories, tags, manifests, referrers, paging, deletes.

The registry has no access control and deletes enabled; the content is pushed by skopeo
(:func:`tests.support.ui.push_sample`) and, for paging, over the API.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from tests.support.interop import Skopeo
from tests.support.manifests import image, put_manifest
from tests.support.servers import RegistryProcess
from tests.support.ui import (
    SBOM_TYPE,
    SIGNATURE_TYPE,
    WAIT,
    Pushed,
    open_ui,
    push_sample,
    rows,
    settled,
    wait_for,
)

from .conftest import Shot

PAGE = 50  # the UI's page size
MANY = 120  # repositories under many/, and tags in demo/tags


@pytest.fixture(scope="module")
def many(open_registry: RegistryProcess) -> list[str]:
    """``many/000`` ... ``many/119``: more repositories than two pages hold."""
    names = [f"many/{i:03d}" for i in range(MANY)]
    with httpx.Client(base_url=open_registry.url, timeout=60) as client:
        for name in names:
            put_manifest(client, name, "latest", image(client, name))
    return names


@pytest.fixture(scope="module")
def many_tags(open_registry: RegistryProcess) -> list[str]:
    """``demo/tags`` with tags ``t000`` ... ``t119`` of one image."""
    tags = [f"t{i:03d}" for i in range(MANY)]
    with httpx.Client(base_url=open_registry.url, timeout=60) as client:
        built = image(client, "demo/tags")
        for tag in tags:
            put_manifest(client, "demo/tags", tag, built)
    return tags


def _size(size: int) -> str:
    """As the UI shows sizes."""
    value, units = float(size), ["B", "KiB", "MiB", "GiB", "TiB"]
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def _expected_usage(registry: RegistryProcess, names: list[str]) -> list[list[str]]:
    """Tag count and size of each of ``names`` as the UI must show them: from dockyard's
    repository index API where it answers, else unknown."""
    answer = httpx.get(f"{registry.url}/dockyard/v1/repositories", params={"n": len(names)})
    if answer.status_code in (404, 405):
        return [["unknown", "unknown"] for _ in names]
    usage = {r["name"]: r for r in answer.json()["repositories"]}
    return [[str(usage[name]["tags"]), _size(usage[name]["size"])] for name in names]


def test_the_root_redirects_to_the_ui(open_registry: RegistryProcess) -> None:
    response = httpx.get(open_registry.url + "/", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/"
    page = httpx.get(open_registry.url + "/ui/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self'
    assert httpx.get(open_registry.url + "/ui/nothing.js").status_code == 404


def test_repositories_are_listed_a_page_at_a_time(
    page: Any,
    shot: Shot,
    open_registry: RegistryProcess,
    sample: Pushed,
    many: list[str],
    many_tags: list[str],
) -> None:
    everything = sorted([sample.repo, "demo/tags", *many])
    open_ui(page, open_registry.url)
    first = [row[0] for row in rows(page, "repositories")]
    assert first == everything[:PAGE]
    assert [row[1:] for row in rows(page, "repositories")] == _expected_usage(
        open_registry, everything[:PAGE]
    )
    shot("repositories")

    page.find_element(By.CSS_SELECTOR, ".pager a.next").click()
    settled(page)
    second = [row[0] for row in rows(page, "repositories")]
    assert second == everything[PAGE : 2 * PAGE]
    page.find_element(By.CSS_SELECTOR, ".pager a.next").click()
    settled(page)
    assert [row[0] for row in rows(page, "repositories")] == everything[2 * PAGE :]
    assert not page.find_elements(By.CSS_SELECTOR, ".pager a.next")
    page.find_element(By.CSS_SELECTOR, ".pager a.first").click()
    settled(page)
    assert [row[0] for row in rows(page, "repositories")] == first
    # A page at a time, never the whole catalog (from /v2/_catalog, or from dockyard's
    # repository index API where it answers; n=1 probes for that API).
    listings = r'"GET /(?:v2/_catalog|dockyard/v1/repositories)\?[^ ]*\bn=(\d+)'
    sizes = [int(n) for n in re.findall(listings, open_registry.log_text())]
    assert PAGE in sizes
    assert all(n <= PAGE for n in sizes), sizes


def test_search_finds_repositories_by_prefix(
    page: Any, shot: Shot, open_registry: RegistryProcess, sample: Pushed, many: list[str]
) -> None:
    open_ui(page, open_registry.url)
    box = page.find_element(By.CSS_SELECTOR, "form.search input[name=q]")
    box.send_keys("demo/")
    page.find_element(By.CSS_SELECTOR, "form.search button").click()
    WebDriverWait(page, WAIT).until(lambda d: "q=demo" in d.current_url)
    settled(page)
    assert [row[0] for row in rows(page, "repositories")] == ["demo/app", "demo/tags"]
    assert not page.find_elements(By.CSS_SELECTOR, ".pager a.next")
    shot("search")
    page.find_element(By.LINK_TEXT, "demo/app").click()
    wait_for(page, "h1", "demo/app")


def test_a_repository_shows_its_tags(
    page: Any, shot: Shot, open_registry: RegistryProcess, sample: Pushed
) -> None:
    open_ui(page, open_registry.url, f"#/r/{sample.repo}")
    table = {row[0]: row for row in rows(page, "tags")}
    assert sorted(table) == sample.tags
    _tag, digest, pushed, size, platforms, action = table["v1"]
    assert digest == sample.image.digest[:19]  # sha256: and 12 hex digits
    assert pushed == "2024-05-01 12:00 UTC"  # the config's "created"
    assert size.endswith("KiB")
    assert platforms == "linux/amd64"
    assert action == "Delete"
    assert table["multi"][1] == sample.index.digest[:19]
    assert table["multi"][4] == "linux/amd64, linux/arm64"
    assert table["multi"][2] == "2024-05-02 08:30 UTC"  # the newest platform's
    assert table["sbom"][4] == SBOM_TYPE  # an artifact: its type instead of a platform
    host = open_registry.url.removeprefix("http://")
    assert page.find_element(By.CSS_SELECTOR, "code.command").text == (
        f"docker pull {host}/{sample.repo}:multi"
    )
    shot("tags")


def test_tags_are_listed_a_page_at_a_time(
    page: Any, open_registry: RegistryProcess, many_tags: list[str]
) -> None:
    open_ui(page, open_registry.url, "#/r/demo/tags")
    assert [row[0] for row in rows(page, "tags")] == many_tags[:PAGE]
    page.find_element(By.CSS_SELECTOR, ".pager a.next").click()
    settled(page)
    assert [row[0] for row in rows(page, "tags")] == many_tags[PAGE : 2 * PAGE]
    listed = re.findall(r'"GET (/v2/demo/tags/tags/list[^ ]*) ', open_registry.log_text())
    assert listed == [
        f"/v2/demo/tags/tags/list?n={PAGE}",
        f"/v2/demo/tags/tags/list?n={PAGE}&last=t049",
    ]
    # Only the tags shown were looked at.
    looked = set(re.findall(r'"GET /v2/demo/tags/manifests/([^ ]*) ', open_registry.log_text()))
    assert looked == set(many_tags[: 2 * PAGE])


def test_the_ui_lives_under_http_prefix(page: Any, tmp_path: Path) -> None:
    server = RegistryProcess(tmp_path, overrides={"http": {"prefix": "/registry/"}})
    server.start()
    try:
        with httpx.Client(base_url=server.url + "/registry", timeout=60) as client:
            put_manifest(client, "under/prefix", "v1", image(client, "under/prefix"))
        redirect = httpx.get(server.url + "/registry/", follow_redirects=False)
        assert redirect.headers["Location"] == "/registry/ui/"
        page.get(server.url + "/registry/")
        settled(page)
        assert [row[0] for row in rows(page, "repositories")] == ["under/prefix"]
        page.find_element(By.LINK_TEXT, "under/prefix").click()
        wait_for(page, "table.tags tr[data-tag='v1']")
        settled(page)
        assert rows(page, "tags")[0][0] == "v1"
    finally:
        page.get("about:blank")
        server.stop()


def test_an_image_shows_config_layers_annotations_and_referrers(
    page: Any, shot: Shot, open_registry: RegistryProcess, sample: Pushed
) -> None:
    open_ui(page, open_registry.url, f"#/r/{sample.repo}")
    page.find_element(By.LINK_TEXT, "v1").click()
    wait_for(page, "h1", f"{sample.repo}:v1")
    settled(page)
    host = open_registry.url.removeprefix("http://")
    commands = [c.text for c in page.find_elements(By.CSS_SELECTOR, "code.command")]
    assert commands == [
        f"docker pull {host}/{sample.repo}:v1",
        f"podman pull {host}/{sample.repo}:v1",
        f"docker pull {host}/{sample.repo}@{sample.image.digest}",
        f"podman pull {host}/{sample.repo}@{sample.image.digest}",
    ]
    assert page.find_element(By.CSS_SELECTOR, "code.digest").text == sample.image.digest
    manifest = httpx.get(
        f"{open_registry.url}/v2/{sample.repo}/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    layer = manifest["layers"][0]
    [row] = rows(page, "layers")
    assert row[1] == layer["digest"][:19]
    assert row[2] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert row[3] == f"{layer['size'] / 1024:.1f} KiB"
    assert manifest["config"]["digest"] in page.find_element(By.TAG_NAME, "main").text
    assert rows(page, "annotations") == [
        ["org.opencontainers.image.source", "https://example.com/app"]
    ]
    # The referrers as a tree by artifact type: the SBOM's own signature below the SBOM.
    tree = page.find_element(By.CSS_SELECTOR, "ul.referrers")
    types = [t.text for t in tree.find_elements(By.XPATH, "./li/span[@class='type']")]
    assert types == [SBOM_TYPE, SIGNATURE_TYPE]
    sbom = tree.find_element(By.CSS_SELECTOR, f"li[data-digest='{sample.sbom.digest}']")
    nested = sbom.find_element(By.CSS_SELECTOR, "ul.referrers li[data-digest]")
    assert nested.get_attribute("data-digest") == sample.sbom_signature.digest
    signature = tree.find_element(By.CSS_SELECTOR, f"li[data-digest='{sample.signature.digest}']")
    assert signature.find_element(By.XPATH, "../../span").text == SIGNATURE_TYPE
    shot("manifest")

    sbom.find_element(By.TAG_NAME, "a").click()
    wait_for(page, "h1", sample.repo)
    settled(page)
    assert SBOM_TYPE in page.find_element(By.CSS_SELECTOR, "dl.facts").text
    shot("artifact")


def test_an_index_shows_its_platforms(
    page: Any, shot: Shot, open_registry: RegistryProcess, sample: Pushed
) -> None:
    open_ui(page, open_registry.url, f"#/m/{sample.repo}/multi")
    children = rows(page, "children")
    assert [(c[0], c[1]) for c in children] == [
        (sample.image.digest[:19], "linux/amd64"),
        (sample.arm.digest[:19], "linux/arm64"),
    ]
    assert rows(page, "annotations") == [["org.opencontainers.image.description", "two platforms"]]
    shot("index")
    page.find_element(By.LINK_TEXT, sample.image.digest[:19]).click()
    wait_for(page, "code.digest", sample.image.digest)


def _tags(registry: RegistryProcess, repo: str) -> list[str]:
    return list(httpx.get(f"{registry.url}/v2/{repo}/tags/list").json()["tags"])


def test_deleting_a_tag_asks_first(
    page: Any,
    shot: Shot,
    open_registry: RegistryProcess,
    skopeo: Skopeo,
    tmp_path: Path,
) -> None:
    host = open_registry.url.removeprefix("http://")
    pushed = push_sample(skopeo, tmp_path, host, "demo/deletable")
    open_ui(page, open_registry.url, f"#/r/{pushed.repo}")
    row = page.find_element(By.CSS_SELECTOR, "tr[data-tag='v1']")
    row.find_element(By.CSS_SELECTOR, "button.delete").click()
    dialog = wait_for(page, "dialog[open]", "Delete tag v1 from demo/deletable?")
    shot("confirm")
    dialog.find_element(By.CSS_SELECTOR, "button[value=cancel]").click()
    # The page removes the dialog once the click's handler has run (a loaded machine may
    # take a moment): waited for, then asserted.
    WebDriverWait(page, WAIT).until_not(lambda d: d.find_elements(By.CSS_SELECTOR, "dialog"))
    assert not page.find_elements(By.CSS_SELECTOR, "dialog")
    assert "v1" in _tags(open_registry, pushed.repo)

    row.find_element(By.CSS_SELECTOR, "button.delete").click()
    wait_for(page, "dialog[open]").find_element(By.CSS_SELECTOR, "button[value=confirm]").click()
    WebDriverWait(page, WAIT).until_not(
        lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-tag='v1']")
    )
    settled(page)
    assert _tags(open_registry, pushed.repo) == ["multi", "sbom", "sig-image", "sig-sbom"]
    # Only the tag: the image is still there by digest.
    response = httpx.head(
        f"{open_registry.url}/v2/{pushed.repo}/manifests/{pushed.image.digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 200


def test_deleting_a_manifest_asks_first(
    page: Any,
    shot: Shot,
    open_registry: RegistryProcess,
    skopeo: Skopeo,
    tmp_path: Path,
) -> None:
    host = open_registry.url.removeprefix("http://")
    pushed = push_sample(skopeo, tmp_path, host, "demo/doomed")
    open_ui(page, open_registry.url, f"#/m/{pushed.repo}/sbom")
    page.find_element(By.CSS_SELECTOR, "button.delete").click()
    dialog = wait_for(page, "dialog[open]", f"Delete manifest {pushed.sbom.digest[:19]}")
    dialog.find_element(By.CSS_SELECTOR, "button[value=confirm]").click()
    WebDriverWait(page, WAIT).until(lambda d: d.current_url.endswith(f"#/r/{pushed.repo}"))
    settled(page)  # back on the repository's page
    assert [row[0] for row in rows(page, "tags")] == ["multi", "sig-image", "sig-sbom", "v1"]
    response = httpx.get(f"{open_registry.url}/v2/{pushed.repo}/manifests/{pushed.sbom.digest}")
    assert response.status_code == 404
    referrers = httpx.get(f"{open_registry.url}/v2/{pushed.repo}/referrers/{pushed.image.digest}")
    assert [m["digest"] for m in referrers.json()["manifests"]] == [pushed.signature.digest]


def test_what_is_not_a_name_is_never_requested(page: Any, open_registry: RegistryProcess) -> None:
    open_ui(page, open_registry.url, "#/r/../../dockyard/v1/openapi.json")
    assert (
        wait_for(page, "p.error").text
        == "“../../dockyard/v1/openapi.json” is not a repository name."
    )
    assert "openapi.json" not in open_registry.log_text()
    open_ui(page, open_registry.url, "#/m/demo/app/..%2Fx")
    assert "is not a tag or digest" in wait_for(page, "p.error").text
