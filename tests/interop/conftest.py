"""Fixtures of the interoperability tests: client binaries, locally built images, servers.

The shared ``registry`` fixture (tests/conftest.py) is the server under test, chosen by
``DOCKYARD_TEST_TARGET`` (dockyard by default; ``distribution`` proves the tests themselves
against docker-registry 2.8). ``server_factory`` starts a registry of an explicit kind,
optionally on a given storage root: the compatibility tests run both servers in turn.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.support.interop import (
    BuiltImage,
    BuiltIndex,
    Layout,
    Skopeo,
    Umoci,
    make_index,
    require_binary,
)
from tests.support.net import ServerPool
from tests.support.servers import DISTRIBUTION_BINARY, Kind, RegistryProcess

ServerFactory = Callable[..., RegistryProcess]


@pytest.fixture(scope="session")
def skopeo() -> Skopeo:
    return Skopeo(require_binary("skopeo"))


@pytest.fixture(scope="session")
def umoci() -> Umoci:
    return Umoci(require_binary("umoci"))


class Images:
    """The images every test pushes, built once per session with umoci (no network)."""

    def __init__(self, layout: Layout, single: BuiltImage, index: BuiltIndex) -> None:
        self.layout = layout
        #: three layers: files, a file replaced and a file deleted in later layers, a symlink
        self.single = single
        #: an OCI index of an amd64 and an arm64 image with different contents
        self.index = index

    @property
    def amd64(self) -> BuiltImage:
        return self.index.images["amd64"]

    @property
    def arm64(self) -> BuiltImage:
        return self.index.images["arm64"]


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory, umoci: Umoci) -> Images:
    work = tmp_path_factory.mktemp("images")
    layout = umoci.init(work / "layout")
    single = umoci.build(
        layout,
        "v1",
        [
            {
                "etc/hello.txt": b"hello from the first layer\n",
                "etc/removed.txt": b"deleted by the third layer\n",
                "srv/empty": b"",
            },
            {"opt/data/random.bin": os.urandom(256 * 1024)},
            {
                "etc/hello.txt": b"replaced by the third layer\n",
                "etc/removed.txt": None,
                "usr/share/doc/readme.md": b"dockyard interop test image\n" * 2000,
            },
        ],
        work,
        architecture="amd64",
        symlinks={"bin/hello": "../etc/hello.txt"},
        labels={"org.example.test": "dockyard-interop"},
    )
    platform_images = [
        umoci.build(
            layout,
            f"arch-{arch}",
            [{"arch.txt": f"{arch}\n".encode(), f"data-{arch}.bin": os.urandom(64 * 1024)}],
            work,
            architecture=arch,
        )
        for arch in ("amd64", "arm64")
    ]
    index = make_index(layout, "multi", platform_images)
    return Images(layout, single, index)


@pytest.fixture
def fresh_image(tmp_path: Path, umoci: Umoci) -> BuiltImage:
    """A two-layer image of random content that no other test pushes."""
    layout = umoci.init(tmp_path / "fresh-layout")
    return umoci.build(
        layout,
        "fresh",
        [{"one.bin": os.urandom(32 * 1024)}, {"two.bin": os.urandom(32 * 1024)}],
        tmp_path,
        architecture="amd64",
    )


@pytest.fixture
def server_factory(
    tmp_path_factory: pytest.TempPathFactory, registry_secret: str
) -> Iterator[ServerFactory]:
    """``server_factory(kind, root=None, overrides=None, extra_args=())``: a started
    registry process.

    ``root`` is the filesystem ``rootdirectory`` (default: the process's own ``data/``).
    On a given ``root``, which docker-registry may have written to behind dockyard's
    metadata index, dockyard starts with ``storage.index.rebuildonstart`` (what an
    operator does after another program wrote: README, Metadata index).
    Every server is stopped at teardown; stop one earlier with ``server.stop()``.
    """
    with ServerPool[RegistryProcess]() as pool:

        def factory(
            kind: Kind,
            root: Path | None = None,
            overrides: dict[str, Any] | None = None,
            extra_args: Sequence[str] = (),
        ) -> RegistryProcess:
            if kind == "distribution" and not Path(DISTRIBUTION_BINARY).exists():
                pytest.fail(f"{DISTRIBUTION_BINARY} is missing: apt-get install -y docker-registry")
            merged: dict[str, Any] = copy.deepcopy(dict(overrides or {}))
            if root is not None:
                merged.setdefault("storage", {})["filesystem"] = {"rootdirectory": str(root)}
                if kind == "dockyard":
                    index = merged["storage"].setdefault("index", {})
                    index.setdefault("rebuildonstart", True)
            server = RegistryProcess(
                tmp_path_factory.mktemp(kind),
                kind=kind,
                secret=registry_secret,
                overrides=merged,
                extra_args=extra_args,
            )
            return pool.add(server)

        yield factory
