"""Fixtures of the operations tests: a registry with its debug listener, and a scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.net import ServerPool, free_port, wait_until
from tests.support.servers import RegistryProcess, deep_merge


class DebugRegistry(RegistryProcess):
    """A dockyard process with ``http.debug.addr`` on a free port (``debug_url``)."""

    def __init__(self, workdir: Path, *, overrides: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.debug_port = free_port()
        debug = {"http": {"debug": {"addr": f"127.0.0.1:{self.debug_port}"}}}
        super().__init__(workdir, overrides=deep_merge(debug, overrides or {}), **kwargs)

    @property
    def debug_url(self) -> str:
        return f"http://127.0.0.1:{self.debug_port}"


DebugRegistryFactory = Callable[..., DebugRegistry]


@pytest.fixture
def debug_registry_factory(
    tmp_path_factory: pytest.TempPathFactory, registry_secret: str
) -> Iterator[DebugRegistryFactory]:
    """``factory(overrides=..., workers=1)``: a started dockyard with a debug listener."""
    with ServerPool[DebugRegistry]() as pool:

        def factory(overrides: dict[str, Any] | None = None, workers: int = 1,
                    env: dict[str, str] | None = None) -> DebugRegistry:
            server = DebugRegistry(
                tmp_path_factory.mktemp("ops"), overrides=overrides, secret=registry_secret,
                extra_args=["--workers", str(workers)], env=env,
            )
            return pool.add(server)

        yield factory


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus text scrape, by (name, labels)."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def settled(url: str, done: Callable[[Samples], bool], deadline: float = 15) -> Samples:
    """The first scrape of ``url`` for which ``done`` is true (several workers' counts
    reach a scrape within a second)."""
    last: list[Samples] = []

    def ready() -> bool:
        last[:] = [scrape(url)]
        return done(last[0])

    wait_until(ready, what=f"metrics at {url}", deadline=deadline)
    return last[0]


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, keys: Sequence[str] = (), **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))
