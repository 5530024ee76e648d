"""A real redis-server on a free loopback port, without persistence."""

from __future__ import annotations

import os
import shutil
import signal
import socket

from tests.support.net import LoopbackServer

__all__ = ["REDIS_BINARY", "RedisServer", "find_redis"]

REDIS_BINARY = "/usr/bin/redis-server"


def find_redis() -> str | None:
    """The redis-server binary on ``PATH`` (or Debian's), or None."""
    found = shutil.which("redis-server")
    if found is None and os.access(REDIS_BINARY, os.X_OK):
        found = REDIS_BINARY
    return found


class RedisServer(LoopbackServer):
    """``redis-server`` on 127.0.0.1, data in ``workdir``; restartable on the same port."""

    what = "redis-server"
    log_name = "redis.log"
    deadline = 15.0

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            find_redis() or REDIS_BINARY, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--daemonize", "no", "--protected-mode", "yes",
        ]

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def pause(self) -> None:
        """SIGSTOP: connections hang, as with a dead host."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)
