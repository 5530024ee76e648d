"""A webhook receiver as a real process, for the notification tests.

Run as a script (``python tests/support/webhook.py PORT FILE``) it serves:

``POST /hook``
    An envelope: answered with the current status; when that is 2xx it is appended,
    with the request's headers, as one JSON line to FILE (so what was received
    survives a restart of the receiver). While blocked, requests wait.
``POST /control``
    ``{"status": 503}`` and/or ``{"block": true}`` change that.
``GET /attempts``
    How many POSTs to ``/hook`` arrived (accepted or not).

:class:`WebhookReceiver` starts it on a free port and reads it back.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

if __name__ != "__main__":
    from tests.support.net import LoopbackServer
else:  # pragma: no cover - the receiver process
    LoopbackServer = object

__all__ = ["WebhookReceiver"]


def _serve(port: int, path: Path) -> None:  # pragma: no cover - the receiver process
    import asyncio

    from aiohttp import web

    state: dict[str, Any] = {"status": 200, "attempts": 0}
    unblocked = asyncio.Event()
    unblocked.set()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        state["attempts"] += 1
        await unblocked.wait()
        status = int(state["status"])
        if 200 <= status < 300:
            # The envelope is stored as sent and parsed when read back: parsing it here
            # cost 11-14 us of CPU an event, taken from the cores benchmarks/features.py's
            # servers share. A body with a line break (not dockyard's) is re-encoded to
            # keep one entry a line.
            if b"\n" in body:
                body = json.dumps(json.loads(body)).encode()
            with path.open("ab") as f:
                f.write(b'{"headers":%s,"envelope":%s}\n'
                        % (json.dumps(dict(request.headers)).encode(), body))
        return web.Response(status=status)

    async def control(request: web.Request) -> web.Response:
        settings = await request.json()
        if "status" in settings:
            state["status"] = int(settings["status"])
        if "block" in settings:
            (unblocked.clear if settings["block"] else unblocked.set)()
        return web.json_response(state)

    async def attempts(request: web.Request) -> web.Response:
        return web.json_response(state["attempts"])

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/control", control)
    app.router.add_get("/attempts", attempts)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


class WebhookReceiver(LoopbackServer):  # type: ignore[misc,valid-type]
    """The receiver process on a free port; restartable on the same port."""

    what = "webhook receiver"
    log_name = "webhook.log"
    deadline = 15.0
    # What received() has parsed of the file so far, and where it stopped.
    _parsed: tuple[dict[str, Any], ...] = ()
    _offset = 0

    @property
    def pid(self) -> int | None:
        """The receiver process's id (it leads its own process group)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    @property
    def file(self) -> Path:
        return Path(self.workdir) / "received.jsonl"

    def command(self) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), str(self.port), str(self.file)]

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/attempts", timeout=1).status_code == 200

    def control(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/control", json=settings, timeout=5).raise_for_status()

    def attempts(self) -> int:
        return int(httpx.get(f"{self.url}/attempts", timeout=5).json())

    def received(self) -> list[dict[str, Any]]:
        """Accepted envelopes with their headers (read from the file: works while stopped).

        Parsed once: each call reads only the lines appended since the last (a benchmark's
        file reaches hundreds of MB, and :meth:`wait_events` polls).
        """
        parsed, offset = self._parsed, self._offset
        try:
            with self.file.open("rb") as f:
                if os.fstat(f.fileno()).st_size < offset:  # a new file: start again
                    parsed, offset = (), 0
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return []
        # Only whole lines: the receiver may be writing the last one now (a line longer
        # than its file buffer goes out in several writes), read it next time.
        whole = data[:data.rfind(b"\n") + 1]
        parsed += tuple(json.loads(line) for line in whole.splitlines())
        self._parsed, self._offset = parsed, offset + len(whole)
        return list(parsed)

    def events(self) -> list[dict[str, Any]]:
        """Every event accepted so far, in order."""
        return [e for entry in self.received() for e in entry["envelope"]["events"]]

    def wait_events(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The events, once at least ``count`` arrived; AssertionError after ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            events = self.events()
            if len(events) >= count or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert len(events) >= count, f"{len(events)} event(s) arrived, expected {count}: {events}"
        return events


if __name__ == "__main__":  # pragma: no cover
    _serve(int(sys.argv[1]), Path(sys.argv[2]))
