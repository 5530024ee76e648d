"""The rados driver against a real single-node Ceph cluster (tests/support/ceph.py): the
driver contract, and what only RADOS does (stripes, omaps, sizes saved on close).

The contract tests are those of tests/unit/test_driver_contract.py, run with this module's
``driver`` fixture: each test gets its own RADOS namespace in the session's pool, and a
stripe size of 64 KiB, so small files already span several stripes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.support import ceph as fixtures
from tests.support.ceph import CephCluster, rados_driver, rados_ioctx
from tests.unit.test_driver_contract import contract, read_all, run, write_file

from dockyard.storage.drivers.base import (
    CheckedDriver,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from dockyard.storage.drivers.factory import DriverConfigError, create_driver
from dockyard.storage.drivers.rados import RadosDriver, RadosParameters

KiB = 1 << 10
CHUNK = 64 * KiB

ceph_cluster = fixtures.ceph_cluster  # the session's cluster

globals().update(contract())


@pytest.fixture
def params(ceph_cluster: CephCluster) -> dict[str, Any]:
    return {
        "poolname": ceph_cluster.pool,
        "conffile": str(ceph_cluster.conf),
        "namespace": f"test-{uuid.uuid4().hex[:12]}",
        "chunksize": CHUNK,
    }


@pytest.fixture
def driver(params: dict[str, Any]) -> CheckedDriver:
    return rados_driver(params)


def test_satisfies_the_protocol(driver: CheckedDriver) -> None:
    assert isinstance(driver.inner, StorageDriver)
    assert driver.name == "rados"


def omap(ioctx: Any, obj: str) -> dict[str, str]:
    import rados

    with rados.ReadOpCtx() as op:
        it, _ = ioctx.get_omap_vals(op, "", "", 1000)
        ioctx.operate_read_op(op, obj)
        return {k: bytes(v).decode() for k, v in it}


def test_layout_stripes_omaps_and_size_xattr(driver: CheckedDriver, params: dict[str, Any]) -> None:
    """Data in chunksize objects under an opaque id, one omap per directory (the root
    too), the total size on the first stripe; a move changes omaps, not data."""
    data = os.urandom(2 * CHUNK + 100)
    run(driver.put_content("/a/b/file", data))
    ioctx = rados_ioctx(params)
    assert omap(ioctx, "dir:/") == {"a": "/"}
    assert omap(ioctx, "dir:/a") == {"b": "/"}
    oid = omap(ioctx, "dir:/a/b")["file"]
    assert "file" not in oid and len(oid) == 32
    sizes = [ioctx.stat(f"{oid}.{i}")[0] for i in range(3)]
    assert sizes == [CHUNK, CHUNK, 100]
    assert ioctx.get_xattr(f"{oid}.0", "size") == str(len(data)).encode()
    run(driver.move("/a/b/file", "/c/moved"))
    assert omap(ioctx, "dir:/c") == {"moved": oid}  # same objects, new name
    assert "file" not in omap(ioctx, "dir:/a/b")
    assert run(driver.get_content("/c/moved")) == data
    run(driver.delete("/c/moved"))
    assert sorted(o.key for o in ioctx.list_objects() if o.key.startswith(oid)) == []


def test_a_move_cut_short_leaves_the_data_to_its_destination(
    driver: CheckedDriver, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed between a move's two omap updates (the destination names the
    stripes, the source still does): removing the source, alone or with its directory
    (an upload's, cleaned up), leaves the destination's data whole."""
    import rados

    inner = driver.inner
    assert isinstance(inner, RadosDriver)
    data = os.urandom(2 * CHUNK + 7)
    ioctx = rados_ioctx(params)
    real_remove = inner.omap_remove

    def killed_before_the_source_goes(io: Any, obj: str, key: str, *, expect: str | None = None
                                      ) -> None:
        if key == "data":  # the move's second update never happens
            raise rados.Error("killed")
        real_remove(io, obj, key, expect=expect)

    for cleanup in ("/uploads/u1", "/uploads/u1/data"):
        run(driver.put_content("/uploads/u1/data", data))
        monkeypatch.setattr(inner, "omap_remove", killed_before_the_source_goes)
        run(driver.move("/uploads/u1/data", "/blobs/b/data"))
        monkeypatch.setattr(inner, "omap_remove", real_remove)
        oid = omap(ioctx, "dir:/blobs/b")["data"]
        assert omap(ioctx, "dir:/uploads/u1")["data"] == oid  # both names, one file
        run(driver.delete(cleanup))
        assert run(driver.get_content("/blobs/b/data")) == data, cleanup
        assert ioctx.get_xattr(f"{oid}.0", "owner") == b"/blobs/b/data"
        run(driver.delete("/blobs/b/data"))  # the owner's removal takes the stripes
        assert [o.key for o in ioctx.list_objects() if o.key.startswith(oid)] == []


def test_the_source_of_a_move_cut_short_after_the_destination_is_gone(
    driver: CheckedDriver, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move killed once the destination names the stripes has happened: the source's
    name left behind is not found (an upload's status: finished, start again), and a
    writer there (a final PUT resumed at the acknowledged offset) cannot cut back the
    destination's data (a published blob) under its readers. Killed before the
    destination names them, the source is whole."""
    import rados

    inner = driver.inner
    assert isinstance(inner, RadosDriver)
    data = os.urandom(2 * CHUNK + 7)
    real_remove, real_swap = inner.omap_remove, inner._swap

    def source_stays(io: Any, obj: str, key: str, *, expect: str | None = None) -> None:
        if key == "data":
            raise rados.Error("killed")
        real_remove(io, obj, key, expect=expect)

    def destination_not_named(*args: Any) -> Any:
        raise rados.Error("killed")

    run(driver.put_content("/uploads/u1/data", data))
    monkeypatch.setattr(inner, "_swap", destination_not_named)
    with pytest.raises(StorageError):
        run(driver.move("/uploads/u1/data", "/blobs/b/data"))
    monkeypatch.setattr(inner, "_swap", real_swap)
    assert run(driver.get_content("/uploads/u1/data")) == data
    assert run(driver.list("/uploads/u1")) == ["/uploads/u1/data"]

    monkeypatch.setattr(inner, "omap_remove", source_stays)
    run(driver.move("/uploads/u1/data", "/blobs/b/data"))
    monkeypatch.setattr(inner, "omap_remove", real_remove)
    with pytest.raises(PathNotFound):
        run(driver.stat("/uploads/u1/data"))
    with pytest.raises(PathNotFound):
        run(driver.get_content("/uploads/u1/data"))
    with pytest.raises(PathNotFound):
        run(driver.writer("/uploads/u1/data", CHUNK))
    assert run(driver.list("/uploads/u1")) == []
    assert run(driver.get_content("/blobs/b/data")) == data


class Killed(Exception):
    """The process died here: this write and every later one never reach RADOS."""


class KilledAfter:
    """An ioctx that makes the first ``writes`` changes to RADOS, then none (each raises
    :class:`Killed`, so no clean-up runs either): a process SIGKILLed at that point."""

    CHANGES = frozenset(
        {"operate_write_op", "write", "write_full", "set_xattr", "rm_xattr", "trunc",
         "remove_object"}
    )

    def __init__(self, ioctx: Any, writes: int) -> None:
        self._ioctx = ioctx
        self.left = writes

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ioctx, name)
        if name not in self.CHANGES:
            return attr

        def change(*args: Any, **kwargs: Any) -> Any:
            if self.left <= 0:
                raise Killed(name)
            self.left -= 1
            return attr(*args, **kwargs)

        return change


async def walked_files(driver: CheckedDriver, top: str = "/v2") -> list[str]:
    return [info.path async for info in driver.walk(top) if not info.is_dir]


@pytest.mark.parametrize("operation", ["put_content", "move"])
def test_a_write_killed_anywhere_then_done_again_is_listed(
    params: dict[str, Any], monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """A file written (or moved) into new directories by a process killed after any of
    its changes to RADOS, then written (moved) again by the next process: it reads back
    and the listing (walk) shows it. The crash campaign once found a layer link naming
    a blob the walk did not show: a kill between the links of two new directories."""
    data = os.urandom(CHUNK + 3)
    source, path = "/v2/uploads/u/data", "/v2/blobs/ab/abcdef/data"
    for writes in range(100):
        space = {**params, "namespace": f"{params['namespace']}-{writes}"}
        setup = rados_driver(space)
        run(setup.put_content("/v2/blobs/00/0011/data", b"x"))  # the tree above exists
        if operation == "move":
            run(setup.put_content(source, data))
        killed = rados_driver(space).inner
        connect = killed._connect
        monkeypatch.setattr(killed, "_connect", lambda c=connect, n=writes: KilledAfter(c(), n))
        try:
            if operation == "move":
                run(CheckedDriver(killed).move(source, path))
            else:
                run(CheckedDriver(killed).put_content(path, data))
        except Killed:
            pass
        else:
            assert writes > 2  # every point was tried, until one too many to kill at
            break
        again = rados_driver(space)
        if operation == "put_content":
            run(again.put_content(path, data))
        elif source in run(walked_files(again)):
            run(again.move(source, path))
        assert run(again.get_content(path)) == data, writes
        assert path in run(walked_files(again)), f"killed after {writes} writes"
    else:
        raise AssertionError("never got through")


def dangling_names(ioctx: Any) -> list[str]:
    """Names (``<directory>/<name>``) whose file's first stripe does not exist."""
    objects = {o.key for o in ioctx.list_objects()}
    return [
        f"{obj[4:]}/{name}"
        for obj in sorted(objects) if obj.startswith("dir:")
        for name, value in omap(ioctx, obj).items()
        if value != "/" and f"{value}.0" not in objects
    ]


def test_a_removal_killed_anywhere_leaves_each_file_whole_or_gone(
    params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory removal (an upload's, finished or cancelled) killed after any of its
    changes to RADOS: no name is left on stripes it removed, so each file reads whole or
    is not found (the crash campaign once got a 503 for an upload's status: its
    ``startedat`` named stripes already gone, "keeps changing")."""
    files = {
        "/v2/uploads/u/startedat": b"2026-12-06T22:00:00Z",
        "/v2/uploads/u/data": os.urandom(CHUNK + 9),
        "/v2/uploads/u/hashstates/sha256/65545": b"state",
    }
    for writes in range(100):
        space = {**params, "namespace": f"{params['namespace']}-{writes}"}
        setup = rados_driver(space)
        for path, data in files.items():
            run(setup.put_content(path, data))
        killed = rados_driver(space).inner
        connect = killed._connect
        monkeypatch.setattr(killed, "_connect", lambda c=connect, n=writes: KilledAfter(c(), n))
        try:
            run(CheckedDriver(killed).delete("/v2/uploads/u"))
        except Killed:
            pass
        else:
            assert writes > 2  # every point was tried
            break
        assert dangling_names(rados_ioctx(space)) == [], f"killed after {writes} writes"
        again = rados_driver(space)
        for path, data in files.items():
            with contextlib.suppress(PathNotFound):
                assert run(again.get_content(path)) == data
        run(again.delete("/v2/uploads/u"))  # purging, later
        assert run(walked_files(again)) == []
    else:
        raise AssertionError("never got through")


def test_a_name_left_on_removed_stripes_is_not_found(
    driver: CheckedDriver, params: dict[str, Any]
) -> None:
    """A name whose stripes are gone (left by a removal that older versions cut short
    after the stripes, or by a move cut short whose destination was replaced since) is
    no file: not found (an upload's status 404, the client starts again), not a storage
    error (503) on every look."""
    run(driver.put_content("/up/startedat", b"2026-12-06T22:00:00Z"))
    run(driver.put_content("/up/data", os.urandom(CHUNK + 1)))
    ioctx = rados_ioctx(params)
    for name in ("startedat", "data"):
        ioctx.remove_object(f"{omap(ioctx, 'dir:/up')[name]}.0")
    with pytest.raises(PathNotFound):
        run(driver.get_content("/up/startedat"))
    with pytest.raises(PathNotFound):
        run(driver.stat("/up/data"))
    with pytest.raises(PathNotFound):
        run(driver.writer("/up/data", 5))
    assert run(driver.list("/up")) == []
    run(driver.put_content("/up/startedat", b"again"))  # a new file over the name
    assert run(driver.get_content("/up/startedat")) == b"again"
    run(driver.delete("/up"))
    assert dangling_names(ioctx) == []


def test_upload_continues_in_another_instance(params: dict[str, Any]) -> None:
    """What one instance closed, another continues; bytes a killed request wrote past
    the saved size do not count and are overwritten."""
    first = rados_driver(params)
    second = rados_driver(params)
    head, junk, tail = os.urandom(CHUNK + 10), os.urandom(CHUNK + 5), os.urandom(3 * CHUNK)

    async def scenario() -> None:
        writer = await first.writer("/up/data")
        await writer.write(head)
        await writer.close()
        assert (await second.stat("/up/data")).size == len(head)
        crashed = await second.writer("/up/data", len(head))
        await crashed.write(junk)  # a whole stripe reaches RADOS, the size is not saved
        assert (await first.stat("/up/data")).size == len(head)
        writer = await first.writer("/up/data", len(head))
        await writer.write(tail)
        await writer.commit()
        assert await second.get_content("/up/data") == head + tail
        assert await read_all(second.reader("/up/data", CHUNK)) == (head + tail)[CHUNK:]

    run(scenario())


def test_cut_back_removes_stripes(driver: CheckedDriver, params: dict[str, Any]) -> None:
    data = os.urandom(4 * CHUNK)
    run(driver.put_content("/f", data))
    ioctx = rados_ioctx(params)
    oid = omap(ioctx, "dir:/")["f"]
    assert run(write_file(driver, "/f", offset=CHUNK + 1)) == CHUNK + 1
    assert run(driver.get_content("/f")) == data[: CHUNK + 1]
    stripes = sorted(o.key for o in ioctx.list_objects() if o.key.startswith(oid))
    assert stripes == [f"{oid}.0", f"{oid}.1"]
    assert ioctx.stat(f"{oid}.1")[0] == 1


def test_files_keep_their_stripe_size(params: dict[str, Any]) -> None:
    """A file written with one chunksize reads back under another."""
    data = os.urandom(3 * CHUNK + 7)
    run(rados_driver(params).put_content("/f", data))
    other = rados_driver({**params, "chunksize": 2 * CHUNK})
    assert run(other.get_content("/f")) == data
    assert run(write_file(other, "/f", b"!", offset=len(data))) == len(data) + 1
    assert run(other.get_content("/f")) == data + b"!"


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({}, "storage.rados.poolname"),
        ({"poolname": "p", "chunksize": 1000}, "storage.rados.chunksize"),
        ({"poolname": "p", "username": "client.admin"}, "storage.rados.username"),
        ({"poolname": "p", "rootdirectory": "/x"}, "storage.rados.rootdirectory"),
    ],
)
def test_config_errors_name_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(DriverConfigError, match=key.replace(".", r"\.")):
        create_driver("rados", params)


def test_missing_bindings_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.storage.drivers.rados import _pool

    def no_rados(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_pool.importlib, "import_module", no_rados)
    monkeypatch.setattr(_pool, "DIST_PACKAGES", "/nonexistent")
    with pytest.raises(DriverConfigError, match="apt-get install python3-rados"):
        create_driver("rados", {"poolname": "p"})


def test_an_unreachable_pool_is_a_storage_error(params: dict[str, Any]) -> None:
    driver = create_driver("rados", {**params, "poolname": "no-such-pool"})
    with pytest.raises(StorageError, match="no-such-pool"):
        run(driver.stat("/x"))


def test_racing_writers_leave_no_stray_stripes(params: dict[str, Any]) -> None:
    """Two instances writing one name at once, a new name included: every replaced file's
    stripes are removed (an omap compare-and-set decides who replaced whom)."""
    drivers = [rados_driver(params) for _ in range(2)]
    versions = [os.urandom(CHUNK + i) for i in range(6)]

    async def scenario() -> None:
        async def put(driver: CheckedDriver, path: str) -> None:
            for version in versions:
                await driver.put_content(path, version)

        for round_ in range(3):
            path = f"/race/{round_}/link"
            await asyncio.gather(*(put(d, path) for d in drivers))
            assert await drivers[0].get_content(path) in versions

    run(scenario())
    ioctx = rados_ioctx(params)
    live = {omap(ioctx, f"dir:/race/{r}")["link"] for r in range(3)}
    stripes = {o.key.split(".")[0] for o in ioctx.list_objects() if not o.key.startswith("dir:")}
    assert stripes == live


def test_debian_bindings_are_found_by_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python that cannot ``import rados`` (a venv, pyenv) loads Debian's build for
    its version from dist-packages, without that directory on its path."""
    import glob
    import sys

    from dockyard.storage.drivers.rados import _pool

    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}-"
    found = glob.glob(f"{_pool.DIST_PACKAGES}/rados.{tag}*.so")
    if not found:
        message = f"no Debian rados module for this Python in {_pool.DIST_PACKAGES}"
        print(f"\nSKIP: {message}", file=sys.stderr)
        pytest.skip(message)

    def no_rados(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_pool.importlib, "import_module", no_rados)
    monkeypatch.delitem(sys.modules, "rados", raising=False)
    module = _pool.import_rados()
    # (An extension module loaded before, through the tests' link to it, is reused.)
    assert os.path.realpath(module.__file__) == os.path.realpath(found[0])
    assert _pool.DIST_PACKAGES not in sys.path
    assert hasattr(module, "Rados")


def test_op_timeouts_default_to_a_minute(params: dict[str, Any], tmp_path: Path) -> None:
    """librados waits forever by default (0); where ceph.conf says nothing, the driver's
    connection fails operations after 60 s instead (a 503, not a hung request), and a
    timeout that ceph.conf sets is kept. Read back from the connection's options."""
    from dockyard.storage.drivers.rados import _pool

    def timeouts(conffile: str) -> tuple[str, str]:
        driver = RadosDriver(RadosParameters({**params, "conffile": conffile}))
        try:
            run(driver.put_content("/timeouts", b"x"))
            cluster = driver._cluster
            return (cluster.conf_get("rados_osd_op_timeout"),
                    cluster.conf_get("rados_mon_op_timeout"))
        finally:
            run(driver.aclose())

    assert "op timeout" not in Path(params["conffile"]).read_text()
    default = [float(t) for t in timeouts(params["conffile"])]
    assert default == [float(_pool.OP_TIMEOUT)] * 2 == [60.0, 60.0]
    conf = tmp_path / "ceph.conf"
    text = Path(params["conffile"]).read_text()
    conf.write_text(text.replace("[client]\n", "[client]\nrados osd op timeout = 7\n", 1))
    assert [float(t) for t in timeouts(str(conf))] == [7.0, 60.0]
