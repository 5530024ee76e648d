"""Shared fixtures: real registry processes on loopback, chosen by ``DOCKYARD_TEST_TARGET``.

``DOCKYARD_TEST_TARGET=dockyard`` (default) runs ``python -m dockyard serve CONFIG``;
``DOCKYARD_TEST_TARGET=distribution`` runs Debian's ``/usr/bin/docker-registry serve CONFIG``,
the reference behaviour the API tests are proven against.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.net import ServerPool
from tests.support.servers import (
    DISTRIBUTION_BINARY,
    Kind,
    RegistryProcess,
    started_since,
    starts_mark,
)

TARGETS: tuple[Kind, ...] = ("dockyard", "distribution")
TARGET = os.environ.get("DOCKYARD_TEST_TARGET", "dockyard")

RegistryFactory = Callable[..., RegistryProcess]


def pytest_configure(config: pytest.Config) -> None:
    if TARGET not in TARGETS:
        raise pytest.UsageError(
            f"DOCKYARD_TEST_TARGET={TARGET!r}: expected one of {', '.join(TARGETS)}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"registry under test: {TARGET} (DOCKYARD_TEST_TARGET)"


_STARTS_MARK = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_STARTS_MARK] = starts_mark()


@pytest.fixture(autouse=True)
def _close_rados_clients() -> Iterator[None]:
    yield
    ceph = sys.modules.get("tests.support.ceph")  # only where a test module uses it
    if ceph is not None:
        ceph.close_rados_clients()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """A failing test's report carries the log tails of the servers it started: a
    flake seen once in CI is then explained by what the server said."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _STARTS_MARK in item.stash:
        for process in started_since(item.stash[_STARTS_MARK]):
            report.sections.append((f"registry log ({call.when})", process.log_tail()))


@pytest.fixture(scope="session")
def target() -> Kind:
    """``"dockyard"`` or ``"distribution"``."""
    assert TARGET in TARGETS
    return TARGET  # type: ignore[return-value]


@pytest.fixture(scope="session")
def registry_secret() -> str:
    """The ``http.secret`` shared by every registry of this test session."""
    return secrets.token_hex(32)


def _check_target(kind: Kind) -> None:
    if kind == "distribution" and not Path(DISTRIBUTION_BINARY).exists():
        pytest.fail(f"{DISTRIBUTION_BINARY} is missing: apt-get install -y docker-registry")


@pytest.fixture(scope="session")
def registry(session_registry: RegistryProcess) -> RegistryProcess:
    """One registry for the whole session: filesystem storage, delete enabled (a module
    may override ``registry``; ``session_registry`` is always the session's)."""
    return session_registry


@pytest.fixture(scope="session")
def session_registry(
    tmp_path_factory: pytest.TempPathFactory, target: Kind, registry_secret: str
) -> Iterator[RegistryProcess]:
    """The session's registry (see ``registry``)."""
    _check_target(target)
    server = RegistryProcess(
        tmp_path_factory.mktemp("registry"), kind=target, secret=registry_secret
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry_factory(
    tmp_path_factory: pytest.TempPathFactory, target: Kind, registry_secret: str
) -> Iterator[RegistryFactory]:
    """Start extra registries with their own config; all are stopped at teardown.

    ``registry_factory(overrides={...}, extra_args=[...], start=True, secret=...)``
    returns a :class:`RegistryProcess`; ``overrides`` is deep-merged into the default
    config; ``secret`` defaults to the session's ``http.secret`` (``None``: no secret).
    """
    _check_target(target)
    with ServerPool[RegistryProcess]() as pool:

        def factory(
            overrides: Mapping[str, Any] | None = None,
            extra_args: Sequence[str] = (),
            *,
            start: bool = True,
            secret: str | None = registry_secret,
        ) -> RegistryProcess:
            server = RegistryProcess(
                tmp_path_factory.mktemp("registry"),
                kind=target,
                secret=secret,
                overrides=overrides,
                extra_args=extra_args,
            )
            return pool.add(server, start=start)

        yield factory


def _require_api_version(response: httpx.Response) -> None:
    value = response.headers.get("Docker-Distribution-API-Version")
    assert value == "registry/2.0", (
        f"{response.request.method} {response.request.url} -> {response.status_code} "
        f"without Docker-Distribution-API-Version: registry/2.0 (got {value!r})"
    )


def make_client(url: str) -> httpx.Client:
    """An httpx client for ``url`` that checks the API version header on every response."""
    return httpx.Client(base_url=url, timeout=60, event_hooks={"response": [_require_api_version]})


@pytest.fixture
def client(registry: RegistryProcess) -> Iterator[httpx.Client]:
    """``httpx.Client(base_url=registry.url, timeout=60)``; every response must carry
    ``Docker-Distribution-API-Version: registry/2.0``."""
    with make_client(registry.url) as http:
        yield http


@pytest.fixture
def client_factory() -> Iterator[Callable[[RegistryProcess], httpx.Client]]:
    """``client_factory(server) -> httpx.Client`` for registries from ``registry_factory``."""
    clients: list[httpx.Client] = []

    def factory(server: RegistryProcess) -> httpx.Client:
        http = make_client(server.url)
        clients.append(http)
        return http

    try:
        yield factory
    finally:
        for http in clients:
            http.close()
