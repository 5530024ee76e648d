"""A throwaway single-node Ceph cluster for the tests: ceph-mon, one memstore ceph-osd and
radosgw, all on loopback, under one temp dir, no mgr, no /etc/ceph or /var/lib/ceph.

``CephCluster(workdir).start()`` takes a few seconds (mon, OSD, a pool whose placement
groups are active, radosgw answering with a user made by ``radosgw-admin``); ``stop()``
terminates the daemons in the reverse order. Authentication is off (``auth ... = none``),
so any ``username`` connects; radosgw then needs ``ms mon client mode = crc``.

The Python bindings: Debian's ``python3-rados`` installs ``rados.cpython-311-*.so`` into
``/usr/lib/python3/dist-packages``, which a Python other than Debian's does not search.
:func:`rados_pythonpath` makes a directory holding only a link to that module (not the
whole of dist-packages, whose other packages would shadow the test environment's), puts it
on this process's ``sys.path`` and returns it for the ``PYTHONPATH`` of registry
processes. :func:`ceph_unavailable` says why a cluster cannot start here, or None.

``shared_ceph(workdir)`` is the one cluster of a test process (started on first use,
stopped at exit); :class:`RadosRegistryProcess` a registry on ``storage.rados``;
:class:`RgwServer` radosgw as the S3 tests see moto; :class:`RadosFiles` a registry's
files in the pool, for tests.support.layout's checks, and what only RADOS can get wrong
(:meth:`RadosFiles.hierarchy_problems`).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.net import free_port, shared, wait_until
from tests.support.servers import StorageRegistryProcess

__all__ = [
    "ACCESS_KEY",
    "BINARIES",
    "POOL",
    "SECRET_KEY",
    "CephCluster",
    "CephStartError",
    "RadosFiles",
    "RadosRegistryProcess",
    "RgwServer",
    "ceph_cluster",
    "ceph_unavailable",
    "close_rados_clients",
    "rados_driver",
    "rados_ioctx",
    "rados_pythonpath",
    "shared_ceph",
]

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
POOL = "dockyard"
V2 = "docker/registry/v2"
ACCESS_KEY = "dockyard-rgw"
SECRET_KEY = "dockyard-rgw-secret-key"
START_DEADLINE = 90.0


class CephStartError(RuntimeError):
    """The cluster did not come up; the message carries the tail of the daemon's log."""


def _rados_module() -> str | None:
    found = sorted(glob.glob(os.path.join(DIST_PACKAGES, "rados.cpython-*.so")))
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    for path in found:
        if tag in os.path.basename(path):
            return path
    return None


def rados_pythonpath(workdir: Path | None = None) -> str | None:
    """A directory from which ``import rados`` finds Debian's module, also put on this
    process's ``sys.path``; None when ``rados`` imports already or is not installed."""
    try:
        import rados  # noqa: F401
    except ImportError:
        pass
    else:
        return None
    module = _rados_module()
    if module is None:
        return None
    directory = Path(workdir or Path("/tmp")) / f"dockyard-rados-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / os.path.basename(module)
    if not link.exists():
        link.symlink_to(module)
    if str(directory) not in sys.path:
        sys.path.append(str(directory))
    return str(directory)


def ceph_unavailable() -> str | None:
    """Why no test cluster can start on this machine, or None if it can."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return (
            f"Ceph is not installed ({', '.join(missing)} missing): "
            "apt-get install ceph-mon ceph-osd radosgw python3-rados"
        )
    rados_pythonpath()
    try:
        import rados  # noqa: F401
    except ImportError as exc:
        return f"the rados Python module is missing ({exc}): apt-get install python3-rados"
    return None


class CephCluster:
    """mon ``a``, memstore osd ``0``, radosgw ``client.rgw.test``; see the module docstring.

    The OSD keeps objects in RAM, up to ``memstore_bytes``; ``client_conf`` goes into
    the ``[client]`` section of ceph.conf (librados options of the registries).
    ``conf`` is the ceph.conf every client uses (``storage.rados.conffile``); ``pool`` a
    pool for the RADOS driver; ``rgw_url`` radosgw's S3 endpoint, with
    :data:`ACCESS_KEY`/:data:`SECRET_KEY` for its user.
    """

    def __init__(
        self, workdir: Path, *, memstore_bytes: int = 2 << 30, client_conf: str = ""
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.memstore_bytes = memstore_bytes
        self.client_conf = client_conf
        self.conf = self.workdir / "ceph.conf"
        self.pool = POOL
        self.rgw_port = free_port()
        self.mon_ports = (free_port(), free_port())
        self._started: list[str] = []

    @property
    def rgw_url(self) -> str:
        return f"http://127.0.0.1:{self.rgw_port}"

    def _write_conf(self) -> None:
        d = self.workdir
        v2, v1 = self.mon_ports
        # OSD ports: a random window, so two clusters on one machine do not collide.
        low = 20000 + (os.getpid() % 400) * 100
        self.conf.write_text(
            f"""[global]
fsid = {uuid.uuid4()}
mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
public network = 127.0.0.0/8
ms bind port min = {low}
ms bind port max = {low + 99}
auth cluster required = none
auth service required = none
auth client required = none
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
crash dir = {d}/crash
keyring = {d}/keyring
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd max object size = {256 << 20}

[mon]
mon data = {d}/mon/$name

[osd]
osd data = {d}/osd/$name

[client]
{self.client_conf}

[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:{self.rgw_port}
rgw data = {d}/rgw
ms mon client mode = crc
rgw dns name = 127.0.0.1
"""
        )

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        command = [*args, "-c", str(self.conf)]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.workdir
        )
        if done.returncode != 0:
            raise CephStartError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
                f"\n{self.log_tail()}"
            )
        return done.stdout

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for log in sorted((self.workdir / "log").glob("*.log")):
            out.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def start(self) -> None:
        rados_pythonpath()  # the readiness check writes through the bindings
        d = self.workdir
        for sub in ("run", "log", "crash", "mon/mon.a", "osd/osd.0", "rgw"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self._write_conf()
        v2, v1 = self.mon_ports
        fsid = next(
            line.split("=", 1)[1].strip()
            for line in self.conf.read_text().splitlines()
            if line.startswith("fsid")
        )
        self._run(
            "monmaptool", "--create", "--fsid", fsid, "--addv", "a",
            f"[v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]", str(d / "monmap"),
        )
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(d / "monmap"))
        self._run("ceph-mon", "-i", "a")
        self._started.append("mon.a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "osd", "new", osd_uuid).strip()
        self._run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self._run("ceph-osd", "-i", osd_id)
        self._started.append(f"osd.{osd_id}")
        self._run("ceph", "osd", "pool", "create", self.pool, "8")
        self._run("ceph", "osd", "pool", "application", "enable", self.pool, "rados")
        wait_until(
            self._pool_writable, what="the ceph pool", deadline=START_DEADLINE,
            log=self.log_tail, error=CephStartError,
        )
        self._run("radosgw", "-n", "client.rgw.test")
        self._started.append("client.rgw.test")
        wait_until(
            self._rgw_answers, what="radosgw", deadline=START_DEADLINE,
            log=self.log_tail, error=CephStartError,
        )
        self._run(
            "radosgw-admin", "user", "create", "--uid=dockyard", "--display-name=dockyard",
            f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}",
        )

    def pid(self, name: str) -> int:
        """The process id of daemon ``name`` (``mon.a``, ``osd.0``, ``client.rgw.test``)."""
        return int((self.workdir / "run" / f"{name}.pid").read_text().strip())

    def _pool_writable(self) -> bool:
        """A write to the pool succeeds (its placement groups are active)."""
        import rados

        cluster = rados.Rados(conffile=str(self.conf), rados_id="admin")
        cluster.connect(timeout=5)
        try:
            ioctx = cluster.open_ioctx(self.pool)
            try:
                ioctx.set_namespace("dockyard-test-probe")
                completion = ioctx.aio_write_full("probe", b"x")
                for _ in range(100):
                    if completion.is_complete():
                        break
                    time.sleep(0.05)
                else:
                    return False
                ioctx.remove_object("probe")
                return True
            finally:
                ioctx.close()
        finally:
            cluster.shutdown()

    def _rgw_answers(self) -> bool:
        return httpx.get(self.rgw_url + "/", timeout=2).status_code in (200, 403)

    def status(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self._run("ceph", "status", "--format=json"))
        return parsed

    def stop(self) -> None:
        """SIGTERM radosgw, the OSD, then the mon (waiting for each), from their pid files."""
        for name in reversed(self._started):
            pid_file = self.workdir / "run" / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(40):  # memstore: nothing to flush, so not long
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._started.clear()


def shared_ceph(workdir: Path) -> CephCluster:
    """One cluster per test process, shared by every test module that needs one."""
    return shared("ceph", lambda: CephCluster(workdir))


class RadosRegistryProcess(StorageRegistryProcess):
    """A registry process on ``storage.rados``, with Debian's ``rados`` module importable."""

    def __init__(
        self, workdir: Path, *, rados: Mapping[str, Any], env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        env = dict(env or {})
        path = rados_pythonpath(workdir.parent)
        if path:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (env.get("PYTHONPATH", os.environ.get("PYTHONPATH")), path) if p
            )
        super().__init__(workdir, driver="rados", params=rados, env=env, **kwargs)


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> CephCluster:
    """The session's Ceph cluster; skipped, with the reason printed, where Ceph is not
    installed. A cluster that is installed but fails to start fails the test."""
    reason = ceph_unavailable()
    if reason is not None:
        print(f"\nSKIP (Ceph): {reason}", file=sys.stderr)
        pytest.skip(reason)
    return shared_ceph(tmp_path_factory.mktemp("ceph"))


class RgwServer:
    """radosgw of a :class:`CephCluster` seen as an S3 server, with the interface of
    tests.support.backends' ``MotoServer`` that the S3 tests use (``url``, ``client()``,
    ``create_bucket()``), and ``credentials``: the ``storage.s3`` keys of its user."""

    what = "radosgw"

    def __init__(self, cluster: CephCluster) -> None:
        self.cluster = cluster
        self.url = cluster.rgw_url
        self.credentials = {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, prefix: str = "dockyard") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


# The librados clients tests open, closed after each test (tests/conftest.py): left to
# the interpreter's exit, librados' destructors now and then abort it (boost::bad_get).
_CLIENTS: list[Any] = []


def rados_driver(params: Mapping[str, Any]) -> Any:
    """A checked rados driver on ``params``, closed after the test that opened it."""
    from dockyard.storage.drivers.base import CheckedDriver
    from dockyard.storage.drivers.rados import RadosDriver, RadosParameters

    driver = RadosDriver(RadosParameters(dict(params)))
    _CLIENTS.append(driver)
    return CheckedDriver(driver)


def rados_ioctx(params: Mapping[str, Any]) -> Any:
    """A librados ioctx on ``params``' pool and namespace, to look at the objects
    themselves; its connection is shut down after the test."""
    import rados

    cluster = rados.Rados(conffile=str(params.get("conffile") or ""))
    cluster.connect(timeout=10)
    _CLIENTS.append(cluster)
    ioctx = cluster.open_ioctx(params["poolname"])
    if params.get("namespace"):
        ioctx.set_namespace(params["namespace"])
    return ioctx


def close_rados_clients() -> None:
    """Close what :func:`rados_driver` and :func:`rados_ioctx` opened, newest first."""
    while _CLIENTS:
        client = _CLIENTS.pop()
        if hasattr(client, "aclose"):
            asyncio.run(client.aclose())
        else:
            client.shutdown()


class RadosFiles:
    """The rados driver's files in a pool and namespace, as keys relative to
    ``docker/registry/v2/`` (tests.support.layout's ``StoredFiles``), read through the
    driver of the tree under test."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def paths(self) -> Iterator[str]:
        from dockyard.storage.drivers.base import PathNotFound

        async def walk() -> list[str]:
            driver = rados_driver(self.params)
            try:
                return [i.path async for i in driver.walk(f"/{V2}") if not i.is_dir]
            except PathNotFound:
                return []
            finally:
                await driver.aclose()

        for path in asyncio.run(walk()):
            yield path[len(V2) + 2 :]

    def read(self, key: str) -> bytes:
        async def get() -> bytes:
            driver = rados_driver(self.params)
            try:
                data: bytes = await driver.get_content(f"/{V2}/{key}")
                return data
            finally:
                await driver.aclose()

        return asyncio.run(get())

    def hierarchy_problems(self) -> list[str]:
        """What a walk cannot see, read with librados itself: a directory object its
        parent does not list (below it, files are served by path but never walked; the
        links of a hidden ``_layers`` would go unchecked), and a name whose first stripe
        is gone. Each is looked at twice, so a removal in progress is not reported."""
        ioctx = rados_ioctx(self.params)
        found = self._hierarchy_problems(ioctx)
        return [p for p in found if p in self._hierarchy_problems(ioctx)]

    @staticmethod
    def _hierarchy_problems(ioctx: Any) -> list[str]:
        import rados

        def entries(obj: str) -> dict[str, str] | None:
            out: dict[str, str] = {}
            while True:
                try:
                    with rados.ReadOpCtx() as op:
                        it, _ = ioctx.get_omap_vals(op, max(out, default=""), "", 1000)
                        ioctx.operate_read_op(op, obj)
                        page = {k: bytes(v).decode() for k, v in it}
                except rados.ObjectNotFound:
                    return None
                out.update(page)
                if len(page) < 1000:
                    return out

        objects = {o.key for o in ioctx.list_objects()}
        directories = {}
        for obj in objects:
            if obj.startswith("dir:") and (listed := entries(obj)) is not None:
                directories[obj[4:]] = listed
        problems = []
        for path, listed in sorted(directories.items()):
            parent = directories.get(posixpath.dirname(path), {})
            if path != "/" and parent.get(posixpath.basename(path)) != "/":
                problems.append(f"directory {path} ({len(listed)} entries) is not listed by "
                                "its parent: walks never see it")
            problems.extend(
                f"{posixpath.join(path, name)} names stripes that are gone ({value})"
                for name, value in sorted(listed.items())
                if value != "/" and f"{value}.0" not in objects
            )
        return problems
