"""Run a registry (dockyard or distribution's ``docker-registry``) as a real process on loopback.

Used by the API tests: every test talks HTTP to a real server, never to an in-process app.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

__all__ = [
    "DISTRIBUTION_BINARY",
    "Kind",
    "RegistryProcess",
    "RegistryStartError",
    "deep_merge",
    "free_port",
]

Kind = Literal["dockyard", "distribution"]

DISTRIBUTION_BINARY = "/usr/bin/docker-registry"
# The source tree under test; put first on PYTHONPATH so `python -m dockyard` runs it.
SRC_DIR = Path(__file__).resolve().parent.parent / "src"
STARTUP_DEADLINE = 15.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 60


class RegistryStartError(RuntimeError):
    """The registry did not become ready; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    ) -> None:
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
        env = {**os.environ, **self.env}
        # Never let the caller's REGISTRY_* variables change the tested config.
        for key in list(env):
            if key.startswith("REGISTRY_") and key not in self.env:
                del env[key]
        if self.kind == "dockyard" and SRC_DIR.is_dir():
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p
            )
        with self.log_path.open("ab") as log:
            log.write(f"=== start {' '.join(self.command())}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                # Own process group: kill() takes worker processes down with the parent.
                start_new_session=True,
            )
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, deadline: float) -> None:
        end = time.monotonic() + deadline
        last_error = "no answer"
        while time.monotonic() < end:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise RegistryStartError(
                    f"{self.kind} exited with status {code} during startup\n{self.log_tail()}"
                )
            try:
                prefix = str(self.config.get("http", {}).get("prefix") or "/").rstrip("/")
                response = httpx.get(f"{self.url}{prefix}/v2/", timeout=2.0)
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            else:
                if response.status_code in (200, 401):
                    return
                last_error = f"GET /v2/ -> {response.status_code}"
            time.sleep(0.05)
        raise RegistryStartError(
            f"{self.kind} not ready after {deadline:.0f}s ({last_error})\n{self.log_tail()}"
        )

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
