"""Servers on loopback for the tests: ports, readiness, process groups, bookkeeping.

``free_port()``
    A port on 127.0.0.1 that was free a moment ago.
``wait_until(ready, what=..., deadline=..., proc=..., log=...)``
    Polls until a server answers; fails early, with its log, when its process exits.
``spawn(command, log_path, cwd=...)``, ``stop_group(proc)``
    A process in its own process group, its output in a log file; SIGTERM to the
    group (SIGKILL after a timeout), so that workers go with their parent.
:class:`LoopbackServer`
    A backend (moto, redis-server, Azurite, ...) on a free port, started that way; a
    subclass gives the command line. ``with server:`` starts and stops it.
:class:`ServerPool`
    What a factory fixture started, stopped at teardown.
``shared(name, make)``
    One server per test process, started on first use and stopped at exit.
``child_pids(pid)``
    The processes ``pid`` started (a registry's workers).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

__all__ = [
    "LoopbackServer",
    "NotReady",
    "ServerPool",
    "child_pids",
    "free_port",
    "port_open",
    "shared",
    "spawn",
    "stop_group",
    "wait_until",
]

LOG_TAIL_CHARS = 3000


#: Ports :func:`free_port` handed out in this process: never handed out twice.
_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0), and not
    handed out before in this process: two ports taken before either server binds (a
    server's listener and its debug listener) would otherwise be the same now and then.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def port_open(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """The ids of the live processes whose parent is ``pid``, sorted (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


class NotReady(Exception):
    """Raised by a readiness check to say why the server is not ready yet."""


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    deadline: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Callable[[], str] = lambda: "",
    error: Callable[[str], Exception] = RuntimeError,
) -> None:
    """Call ``ready`` every 50 ms until it returns true.

    An exception from ``ready`` means "not yet" and is reported if the wait fails.
    Raises ``error`` (its message ends with ``log()``) as soon as ``proc`` exits, or
    when ``deadline`` seconds have passed.
    """
    end = time.monotonic() + deadline
    last = "no answer"
    while time.monotonic() < end:
        code = proc.poll() if proc is not None else None
        if code is not None:
            raise error(f"{what} exited with status {code} during startup\n{log()}")
        try:
            if ready():
                return
        except NotReady as exc:
            last = str(exc)
        except Exception as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise error(f"{what} not ready after {deadline:.0f}s ({last})\n{log()}")


def spawn(
    command: Sequence[str], log_path: Path, *, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new process group (see :func:`stop_group`),
    stdin closed, its output appended to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM the process group led by ``proc`` (woken first, should it be stopped),
    then SIGKILL it if ``proc`` has not exited after ``timeout`` seconds."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class LoopbackServer:
    """A server process on a free 127.0.0.1 port, with ``workdir`` as its folder.

    Subclasses give :meth:`command` and, where a listening port is not proof enough
    that it serves, :meth:`ready`; :meth:`environment` (default: inherited) and the
    class attributes below tune the rest. The process leads its own process group,
    so :meth:`stop` takes any children with it; its output goes to ``log_path``.
    """

    what = "server"
    log_name = "server.log"
    deadline = 30.0
    """Seconds :meth:`start` waits for :meth:`ready`."""
    stop_timeout = 5.0
    start_error: type[Exception] = RuntimeError

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.workdir / self.log_name
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> Mapping[str, str] | None:
        return None

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self, deadline: float | None = None) -> None:
        self._proc = spawn(self.command(), self.log_path, cwd=self.workdir, env=self.environment())
        wait_until(
            self.ready,
            what=self.what,
            deadline=self.deadline if deadline is None else deadline,
            proc=self._proc,
            log=lambda: self.log_text()[-LOG_TAIL_CHARS:],
            error=self.start_error,
        )

    def stop(self) -> None:
        stop_group(self._proc, self.stop_timeout)
        self._proc = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=_Server)


class ServerPool(Generic[S]):
    """The servers a factory fixture made; ``with`` stops them all at the end::

        with ServerPool[RegistryProcess]() as pool:
            yield lambda **kwargs: pool.add(RegistryProcess(...), start=...)
    """

    def __init__(self) -> None:
        self.servers: list[S] = []

    def add(self, server: S, *, start: bool = True) -> S:
        """Keep ``server`` (to stop it at the end) and start it, unless ``start`` is false."""
        self.servers.append(server)
        if start:
            server.start()
        return server

    def __enter__(self) -> ServerPool[S]:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.stop()


_shared: dict[str, Any] = {}


def shared(name: str, make: Callable[[], S]) -> S:
    """The server ``name`` of this test process: made by ``make`` and started on first
    use, stopped at exit. Session fixtures of several test modules get the same one."""
    if name not in _shared:
        server = make()
        server.start()
        atexit.register(server.stop)
        _shared[name] = server
    server_: S = _shared[name]
    return server_
