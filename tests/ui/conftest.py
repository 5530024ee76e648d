"""Fixtures for the web UI tests: one headless Chromium per session, real registries,
content pushed by skopeo, and screenshots of every page under ``test-artifacts/ui/``.

The UI is dockyard's own: with ``DOCKYARD_TEST_TARGET=distribution`` these tests skip.
Chromium, chromedriver and skopeo are Debian packages (scripts/install-test-deps); a
missing one fails the run, as for the other real clients.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from tests.support.interop import Skopeo, require_binary
from tests.support.servers import RegistryProcess
from tests.support.ui import CHROMEDRIVER, CHROMIUM, WAIT, Pushed, chromium_options, push_sample

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

Shot = Callable[[str], Path]


@pytest.fixture(scope="module", autouse=True)
def _dockyard_only(target: str) -> None:
    if target != "dockyard":
        pytest.skip("the web UI is dockyard's own (distribution has none)")


@pytest.fixture(scope="session")
def skopeo() -> Skopeo:
    return Skopeo(require_binary("skopeo"))


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's chromium, headless, driven by chromedriver; one for the whole session."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: apt-get install -y {package}")
    profile = tmp_path_factory.mktemp("chromium-profile")
    service = Service(CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=chromium_options(profile))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The shared browser; the UI's session storage (credentials) is cleared after each test."""
    yield browser
    if browser.current_url.startswith("http"):
        browser.execute_script("sessionStorage.clear()")
    browser.get("about:blank")


@pytest.fixture
def shot(browser: Any, request: pytest.FixtureRequest) -> Shot:
    """``shot("tags")`` saves a screenshot as ``test-artifacts/ui/<test>-tags.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        browser.save_screenshot(str(path))
        return path

    return take


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry without access control, deletes enabled."""
    server = RegistryProcess(tmp_path_factory.mktemp("ui-registry"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sample(
    open_registry: RegistryProcess, skopeo: Skopeo, tmp_path_factory: pytest.TempPathFactory
) -> Pushed:
    """The sample content in ``demo/app`` of :func:`open_registry`."""
    host = open_registry.url.removeprefix("http://")
    return push_sample(skopeo, tmp_path_factory.mktemp("layouts"), host, "demo/app")
