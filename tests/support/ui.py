"""Helpers for the web UI tests: content pushed by skopeo, and a headless Chromium.

The content is built as an OCI image layout on disk (images, a multi-arch index, and
artifacts whose ``subject`` is an image: a signature and an SBOM, the SBOM itself
signed) and copied to the registry with skopeo, as a user would push it. The browser
is Debian's ``chromium`` driven through ``chromedriver`` by selenium.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait
from tests.support.interop import (
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Layout,
    Skopeo,
    sha256_digest,
)

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "SBOM_TYPE",
    "SIGNATURE_TYPE",
    "WAIT",
    "Pushed",
    "chromium_options",
    "open_ui",
    "push_sample",
    "rows",
    "settled",
    "wait_for",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SBOM_TYPE = "application/spdx+json"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
CREATED = "2024-05-01T12:00:00Z"


def chromium_options(profile: Path) -> Options:
    """Headless Chromium that talks to nothing but the pages it is sent to."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return options


WAIT = 30.0  # seconds a page may take to show what a test waits for


def open_ui(driver: WebDriver, url: str, fragment: str = "#/") -> None:
    """Open the UI of the registry at ``url`` on page ``fragment``; wait until it is drawn."""
    driver.get(f"{url}/ui/{fragment}")
    settled(driver)


def settled(driver: WebDriver) -> None:
    """Wait until the page of the current URL has been drawn with everything it shows."""
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script(
            "const main = document.querySelector('main');"
            "return main.dataset.shown === location.hash && !main.hasAttribute('aria-busy');"
        )
    )


def wait_for(driver: WebDriver, css: str, text: str = "") -> WebElement:
    """The first element matching ``css`` (whose text contains ``text``), once there is one."""

    def found(d: WebDriver) -> WebElement | bool:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if text in element.text:
                return element
        return False

    # An element found and then replaced by the next render is stale: look again.
    element = WebDriverWait(
        driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)
    ).until(found)
    assert isinstance(element, WebElement)
    return element


def rows(driver: WebDriver, table: str) -> list[list[str]]:
    """The cells' text of each body row of ``table.<table>``."""
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, f"table.{table} tbody tr")
    ]


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def _layer(payload: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Built:
    """One manifest written into the layout: its bytes and descriptor."""

    raw: bytes
    media_type: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    def descriptor(self) -> dict[str, Any]:
        return _descriptor(self.media_type, self.raw, **self.extra)


def _image(layout: Layout, arch: str, payload_size: int, created: str) -> Built:
    layer = _layer(os.urandom(payload_size))
    config = json.dumps(
        {
            "created": created,
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(gzip.decompress(layer))]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(OCI_LAYER, layer)],
            "annotations": {"org.opencontainers.image.source": "https://example.com/app"},
        }
    ).encode()
    for blob in (layer, config, manifest):
        layout.write_blob(blob)
    return Built(manifest, OCI_MANIFEST, {"platform": {"architecture": arch, "os": "linux"}})


def _artifact(layout: Layout, artifact_type: str, subject: Built, payload: bytes) -> Built:
    empty = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": _descriptor(OCI_EMPTY, empty),
            "layers": [_descriptor(artifact_type, payload)],
            "subject": _descriptor(subject.media_type, subject.raw),
            "annotations": {"org.opencontainers.image.created": CREATED},
        }
    ).encode()
    for blob in (empty, payload, manifest):
        layout.write_blob(blob)
    return Built(manifest, OCI_MANIFEST)


@dataclass
class Pushed:
    """What :func:`push_sample` pushed to ``repo`` (each manifest under a tag)."""

    repo: str
    image: Built  # v1, linux/amd64, with a signature and an SBOM (itself signed)
    arm: Built  # linux/arm64, untagged
    index: Built  # multi: image and arm
    signature: Built
    sbom: Built
    sbom_signature: Built

    @property
    def tags(self) -> list[str]:
        return ["multi", "sbom", "sig-image", "sig-sbom", "v1"]


def push_sample(skopeo: Skopeo, workdir: Path, host: str, repo: str, creds: str = "") -> Pushed:
    """Build the sample content in an OCI layout under ``workdir`` and push it to
    ``host/repo`` with skopeo (``creds`` as ``user:password`` if the registry wants them)."""
    path = workdir / repo.replace("/", "_")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    layout = Layout(path)
    image = _image(layout, "amd64", 3000, CREATED)
    arm = _image(layout, "arm64", 5000, "2024-05-02T08:30:00Z")
    index_raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [image.descriptor(), arm.descriptor()],
            "annotations": {"org.opencontainers.image.description": "two platforms"},
        }
    ).encode()
    layout.write_blob(index_raw)
    index = Built(index_raw, OCI_INDEX)
    signature = _artifact(layout, SIGNATURE_TYPE, image, b'{"sig": "image"}')
    sbom = _artifact(layout, SBOM_TYPE, image, b'{"spdxVersion": "SPDX-2.3"}')
    sbom_signature = _artifact(layout, SIGNATURE_TYPE, sbom, b'{"sig": "sbom"}')
    refs: Mapping[str, Built] = {
        "v1": image,
        "multi": index,
        "sbom": sbom,
        "sig-image": signature,
        "sig-sbom": sbom_signature,
    }
    for tag, built in refs.items():
        layout.add_ref(tag, built.descriptor())
    extra = ["--dest-creds", creds] if creds else []
    for tag in refs:
        skopeo.copy(layout.ref(tag), f"docker://{host}/{repo}:{tag}", "--all", *extra)
    return Pushed(repo, image, arm, index, signature, sbom, sbom_signature)
