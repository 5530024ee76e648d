"""``dockyard serve`` on its first run: usage errors, a busy port, unknown keys, the secret.

Each test runs the real command (``python -m dockyard serve``) as a process on loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import yaml
from tests.conftest import TARGET, make_client
from tests.support.api import (
    digest_of,
    patch_chunk,
    random_repo,
    start_upload,
    upload_range,
    with_query,
)
from tests.support.net import child_pids, wait_until
from tests.support.servers import RegistryProcess, process_env

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="dockyard's serve command")


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``dockyard serve ARGS`` expected to stop by itself (refused or failed)."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=process_env(),
    )


def _config(tmp_path: Path, port: int, **http: object) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "s", **http},
    }))
    return path


class DefaultConfigRegistry(RegistryProcess):
    """``dockyard serve`` without CONFIG (the embedded default), on a free loopback port.

    The default keeps its data in ``./registry-data``: the work directory.
    """

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None,
                 extra_args: list[str] | None = None) -> None:
        super().__init__(workdir, extra_args=extra_args or [])
        self.env = {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{self.port}", **(env or {})}
        self.data = self.workdir / "registry-data"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "dockyard", "serve", *self.extra_args]


def test_workers_zero_prints_serves_usage(tmp_path: Path) -> None:
    done = _serve("--workers", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: dockyard serve ")
    assert "dockyard serve: error: argument --workers: must be at least 1, got 0" in done.stderr


def test_busy_port_names_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(str(_config(tmp_path, port)), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"dockyard: cannot start: address 127.0.0.1:{port} already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_key_is_logged_at_start_and_refused_with_strict(tmp_path: Path) -> None:
    server = RegistryProcess(tmp_path / "server")
    server.config_path = config = _config(tmp_path, server.port, adress=":5000")
    warning = 'unknown configuration key "http.adress"'
    with server:
        assert f'{warning} ({config}, line 3); did you mean "http.addr"?' in server.log_text()
    done = _serve(str(config), "--strict", cwd=tmp_path)
    assert done.returncode == 2
    assert warning in done.stderr  # logged like any warning, then refused
    assert "configuration error: unknown configuration key http.adress: refused with --strict" in (
        done.stderr
    )


def test_default_config_keeps_a_generated_secret_for_restarts_and_workers(
    tmp_path: Path,
) -> None:
    server = DefaultConfigRegistry(tmp_path)
    kept = server.data / "http.secret"
    with server:
        log = server.log_text()
        assert f"generated one in {kept} (mode 0600)" in log
        assert "http.secret is not set" not in log
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        secret = kept.read_bytes()
        repo, data = random_repo(), os.urandom(8192)
        with make_client(server.url) as client:
            location = start_upload(client, repo)
            response = patch_chunk(client, location, data[:4096], start=0)
            assert response.status_code == 202, response.text
            location = urljoin(location, response.headers["Location"])

    # Another start, with two workers: the upload (its signed state) continues.
    server.extra_args = ["--workers", "2"]
    with server:
        assert f"using the one kept in {kept}" in server.log_text()
        assert kept.read_bytes() == secret
        for start in (4096, None):
            with make_client(server.url) as client:  # a new connection: either worker
                if start is None:
                    response = client.put(with_query(location, digest=digest_of(data)))
                    assert response.status_code == 201, response.text
                    continue
                response = patch_chunk(client, location, data[start:], start=start)
                assert response.status_code == 202, response.text
                assert response.headers["Range"] == upload_range(len(data))
                location = urljoin(location, response.headers["Location"])


def test_default_config_with_a_secret_keeps_none(tmp_path: Path) -> None:
    with DefaultConfigRegistry(tmp_path, env={"REGISTRY_HTTP_SECRET": "set-by-the-operator"}) as s:
        assert httpx.get(f"{s.url}/v2/", timeout=10).status_code == 200
        assert "http.secret" not in s.log_text()
    assert not (s.data / "http.secret").exists()


def test_workers_default_to_one_per_cpu(tmp_path: Path) -> None:
    """Without --workers or http.workers, as many workers as CPUs (the Go server's
    GOMAXPROCS), and any of them continues an upload another started."""
    cpus = len(os.sched_getaffinity(0))
    server = RegistryProcess(tmp_path, workers=None)
    assert "workers" not in server.config["http"]
    server.start()
    try:
        assert server.pid is not None
        assert len(child_pids(server.pid)) == (cpus if cpus > 1 else 0)
        assert f"with {cpus} worker{'s' if cpus > 1 else ''}" in server.log_text()
        repo, data = random_repo("default-workers"), os.urandom(8 * 4096)
        with make_client(server.url) as client:
            location = start_upload(client, repo)
        for start in range(0, len(data), 4096):
            with make_client(server.url) as client:  # a new connection: any worker
                chunk = data[start:start + 4096]
                response = patch_chunk(client, location, chunk, start=start)
                assert response.status_code == 202, response.text
                location = urljoin(location, response.headers["Location"])
        with make_client(server.url) as client:
            response = client.put(with_query(location, digest=digest_of(data)))
            assert response.status_code == 201, response.text
    finally:
        server.stop()


def test_inmemory_driver_defaults_to_one_worker(tmp_path: Path) -> None:
    server = RegistryProcess(tmp_path, workers=None, overrides={"storage": {"inmemory": {}}})
    del server.config["storage"]["filesystem"]
    server._write_config()
    server.start()
    try:
        assert server.pid is not None and child_pids(server.pid) == []
        assert "with 1 worker" in server.log_text()
    finally:
        server.stop()


def test_a_worker_that_crashes_leaves_its_stacks_in_the_log_and_is_replaced(
    tmp_path: Path,
) -> None:
    """A fatal signal in a worker (a crash in native code) prints every thread's Python
    stack to the log (faulthandler) and the supervisor starts another worker."""
    server = RegistryProcess(tmp_path, workers=2)
    server.start()
    try:
        assert server.pid is not None
        crashed = child_pids(server.pid)[0]
        os.kill(crashed, signal.SIGSEGV)
        wait_until(lambda: "restarting" in server.log_text(), deadline=15,
                   what="the supervisor to restart the worker")
        log = server.log_text()
        assert "Fatal Python error: Segmentation fault" in log
        assert "Current thread" in log or "Thread 0x" in log  # the stacks follow
        assert f"(pid {crashed}) exited" in log
        wait_until(lambda: len(child_pids(server.pid or 0)) == 2, deadline=15,
                   what="two workers again")
        with make_client(server.url) as client:
            assert client.get("/v2/").status_code == 200
    finally:
        server.stop()
