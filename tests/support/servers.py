"""Run a registry (dockyard or distribution's ``docker-registry``) as a real process on loopback.

Used by the API tests: every test talks HTTP to a real server, never to an in-process app.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import sys
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml
from tests.support.net import NotReady, free_port, spawn, wait_until

__all__ = [
    "DISTRIBUTION_BINARY",
    "Kind",
    "RegistryProcess",
    "RegistryStartError",
    "StorageRegistryProcess",
    "deep_merge",
    "process_env",
    "started_since",
    "starts_mark",
]

Kind = Literal["dockyard", "distribution"]

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
# The source tree under test; put first on PYTHONPATH so `python -m dockyard` runs it.
SRC_DIR = Path(__file__).resolve().parents[2] / "src"
STARTUP_DEADLINE = 15.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 60


# Every start in this test process, in order, so that a failing test's report can carry
# the logs of the servers it started (tests/conftest.py); weak, to keep none alive.
_STARTS: list[weakref.ref[RegistryProcess]] = []


def started_since(mark: int) -> list[RegistryProcess]:
    """The processes started since ``mark`` (from :func:`starts_mark`), each once."""
    seen: dict[int, RegistryProcess] = {}
    for ref in _STARTS[mark:]:
        process = ref()
        if process is not None:
            seen.setdefault(id(process), process)
    return list(seen.values())


def starts_mark() -> int:
    """A mark for :func:`started_since`: the number of starts so far."""
    return len(_STARTS)


class RegistryStartError(RuntimeError):
    """The registry did not become ready; the message carries the tail of its log."""


def process_env(extra: Mapping[str, str] | None = None, *, source: bool = True) -> dict[str, str]:
    """The environment of a dockyard (or docker-registry) process: ours and ``extra``.

    The caller's ``REGISTRY_*`` variables are left out (they would change the tested
    config), unless ``extra`` sets them; with ``source``, the source tree under test
    comes first on ``PYTHONPATH``, so that ``python -m dockyard`` runs it.
    """
    extra = dict(extra or {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(extra)
    if source and SRC_DIR.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p
        )
    return env


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides`` merged in; nested mappings merge key by key."""
    merged: dict[str, Any] = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class RegistryProcess:
    """One registry server process with its own config, storage root and log file.

    ``workdir`` holds ``config.yml``, ``registry.log`` and the storage root ``data/``.
    The port is chosen once and kept across :meth:`restart`, so URLs stay valid.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        kind: Kind = "dockyard",
        secret: str | None = "dockyard-test-secret",
        overrides: Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        log_level: str = "info",
        env: Mapping[str, str] | None = None,
        workers: int | None = 1,
    ) -> None:
        """``workers``: dockyard's ``http.workers``; 1 keeps the suite light on a shared
        machine, None leaves the default (one per CPU); ``--workers`` overrides either."""
        if kind not in ("dockyard", "distribution"):
            raise ValueError(f"unknown registry kind {kind!r}")
        self.kind: Kind = kind
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root = self.workdir / "data"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        base: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": log_level},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }
        if secret is not None:  # None: no http.secret at all (the server picks one)
            base["http"]["secret"] = secret
        if workers is not None and kind == "dockyard":
            base["http"]["workers"] = workers
        self.config: dict[str, Any] = deep_merge(base, overrides or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    # -- properties -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        if self.kind == "dockyard":
            return [
                sys.executable,
                "-m",
                "dockyard",
                "serve",
                str(self.config_path),
                *self.extra_args,
            ]
        return [DISTRIBUTION_BINARY, "serve", str(self.config_path), *self.extra_args]

    # -- lifecycle --------------------------------------------------------------------

    def start(self, deadline: float = STARTUP_DEADLINE) -> None:
        """Start the process and wait until ``GET /v2/`` answers 200 or 401."""
        if self.running:
            return
        env = process_env(self.env, source=self.kind == "dockyard")
        _STARTS.append(weakref.ref(self))
        with self.log_path.open("ab") as log:
            log.write(f"=== start {' '.join(self.command())}\n".encode())
        # Own process group: kill() takes worker processes down with the parent.
        self._proc = spawn(self.command(), self.log_path, cwd=self.workdir, env=env)
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, deadline: float) -> None:
        wait_until(
            self._answers, what=self.kind, deadline=deadline, proc=self._proc,
            log=self.log_tail, error=RegistryStartError,
        )

    def _answers(self) -> bool:
        status = self._probe().status_code
        if status not in (200, 401):
            raise NotReady(f"GET /v2/ -> {status}")
        return True

    def _probe(self) -> httpx.Response:
        """``GET /v2/`` (below ``http.prefix``): the readiness check of :meth:`start`."""
        prefix = str(self.config.get("http", {}).get("prefix") or "/").rstrip("/")
        return httpx.get(f"{self.url}{prefix}/v2/", timeout=2.0)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL (to its whole process group) after ``timeout`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        # Workers that outlived their parent would keep the port.
        self._signal_group(proc, signal.SIGKILL)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crash would."""
        proc = self._proc
        if proc is None:
            return
        self._signal_group(proc, signal.SIGKILL)
        proc.wait()
        self._proc = None

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        """Signal the process group led by ``proc`` (started with start_new_session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def restart(self, *, hard: bool = False) -> None:
        """Stop (or with ``hard``, kill) and start again on the same port and storage."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def reconfigure(self, overrides: Mapping[str, Any]) -> None:
        """Merge ``overrides`` into the config file (takes effect at the next start)."""
        self.config = deep_merge(self.config, overrides)
        self._write_config()

    # -- helpers ----------------------------------------------------------------------

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def __enter__(self) -> RegistryProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RegistryProcess(kind={self.kind!r}, url={self.url!r}, pid={self.pid})"


class StorageRegistryProcess(RegistryProcess):
    """A :class:`RegistryProcess` on ``storage.<driver>`` instead of the filesystem.

    ``overrides`` merge as usual; the driver section is replaced, so the config has
    exactly one storage driver. ``safe_env`` (a subclass's: no real cloud credentials
    looked for) is part of the environment unless ``env`` says otherwise.
    """

    safe_env: Mapping[str, str] = {}

    def __init__(self, workdir: Path, *, driver: str, params: Mapping[str, Any],
                 env: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(workdir, env={**self.safe_env, **(env or {})}, **kwargs)
        storage = self.config["storage"]
        storage.pop("filesystem", None)
        self.config["storage"] = {driver: dict(params), **storage}
        self._write_config()
