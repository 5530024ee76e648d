"""Real backend servers on loopback for the tests: moto's S3 server, a TCP proxy that can
cut the line, and registry processes configured for S3; ``RedisServer`` is
tests.support.redis's, named here too for the benchmarks.

Nothing here fakes a backend in process: every server is a separate process (or, for the
proxy, real sockets) on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from tests.support.net import LoopbackServer, free_port, shared
from tests.support.redis import RedisServer
from tests.support.servers import StorageRegistryProcess

__all__ = [
    "ACCESS_KEY",
    "REGION",
    "SECRET_KEY",
    "MotoServer",
    "RedisServer",
    "S3RegistryProcess",
    "TcpProxy",
    "shared_moto",
]

ACCESS_KEY = "dockyard-test"
SECRET_KEY = "dockyard-test-secret-key"
REGION = "us-east-1"
# Never let a test look for cloud credentials anywhere but its own config.
SAFE_AWS_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": REGION,
    # The Go SDK in docker-registry panics on a CA bundle with its custom transport.
    "AWS_CA_BUNDLE": "",
}
_REQUEST_LINE = re.compile(r'"(GET|HEAD|PUT|POST|DELETE|PATCH) (\S+) HTTP/[\d.]+" (\d{3})')


class MotoServer(LoopbackServer):
    """``python -m moto.server`` on a free loopback port; state lives in its memory.

    Its log has one line per request (werkzeug), which :meth:`requests` reads to count
    round trips.
    """

    what = "moto server"
    log_name = "moto.log"
    credentials: Mapping[str, Any] = {}
    """``storage.s3`` keys beyond :func:`s3_params`' (none: its keys are moto's)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **SAFE_AWS_ENV}

    def ready(self) -> bool:
        return httpx.get(self.url + "/", timeout=2).status_code == 200

    def client(self) -> Any:
        """A boto3 S3 client for setting up and inspecting buckets."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, prefix: str = "dockyard") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request logged after byte ``since`` of the log."""
        with self.log_path.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [(m[1], m[2], int(m[3])) for m in _REQUEST_LINE.finditer(text)]


def shared_moto(workdir: Path) -> MotoServer:
    """One moto server per test process, shared by every test module that needs one."""
    return shared("moto", lambda: MotoServer(workdir))


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to a target port; :meth:`cut` drops every connection
    and refuses new ones (as a backend that went away), :meth:`restore` listens again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)
        self._listener = listener
        self._serving.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._serving.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
        listener.close()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for s in (source, sink):
                    if s in self._conns:
                        self._conns.discard(s)
                        s.close()

    def cut(self) -> None:
        self._serving.clear()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()


class S3RegistryProcess(StorageRegistryProcess):
    """A registry process on ``storage.s3`` (``s3``: the driver's parameters)."""

    safe_env = SAFE_AWS_ENV

    def __init__(self, workdir: Path, *, s3: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(workdir, driver="s3", params=s3, **kwargs)


def s3_params(
    endpoint: str, bucket: str, *, root: str = "", **extra: Any
) -> dict[str, Any]:
    """``storage.s3`` for a bucket on a loopback S3 server."""
    params: dict[str, Any] = {
        "accesskey": ACCESS_KEY,
        "secretkey": SECRET_KEY,
        "region": REGION,
        "regionendpoint": endpoint,
        "bucket": bucket,
        "secure": False,
    }
    if root:
        params["rootdirectory"] = root
    params.update(extra)
    return params
