"""Logs (issue 11): formats, fields, request ids, the access log, and no secrets anywhere."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.api import TARGET, push_blob, random_repo, start_upload
from tests.support.auth import write_htpasswd
from tests.support.net import free_port
from tests.support.servers import RegistryProcess
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.skipif(
    TARGET == "distribution", reason="dockyard's log format (distribution uses logrus')"
)

Factory = Callable[..., RegistryProcess]


def log_lines(server: RegistryProcess) -> list[str]:
    """What the server wrote, minus the test harness's own ``=== start`` lines."""
    return [line for line in server.log_text().splitlines()
            if line and not line.startswith("=== ")]


def fail_with_id(server: RegistryProcess, rid: str) -> httpx.Response:
    response = httpx.get(f"{server.url}/v2/nothing/here/manifests/latest",
                         headers={"X-Request-Id": rid}, timeout=10)
    assert response.status_code == 404
    assert response.headers["X-Request-Id"] == rid
    return response


@pytest.mark.parametrize("formatter", ["json", "logstash"])
def test_json_lines_parse_and_the_failing_request_is_findable(
    registry_factory: Factory, formatter: str
) -> None:
    server = registry_factory(overrides={"log": {"formatter": formatter,
                                                 "fields": {"service": "registry-a"}}})
    fail_with_id(server, "find-me-42")
    server.stop()  # every line flushed
    entries = [json.loads(line) for line in log_lines(server)]  # each line parses
    assert entries and all(e["service"] == "registry-a" for e in entries)
    message = "message" if formatter == "logstash" else "msg"
    assert all(message in e and "level" in e for e in entries)
    if formatter == "logstash":
        assert all(e["@version"] == "1" and "@timestamp" in e for e in entries)
    found = [e for e in entries if e.get("http.request.id") == "find-me-42"]
    assert found, entries
    assert found[-1]["http.response.status"] == 404
    assert found[-1]["http.request.method"] == "GET"
    assert found[-1]["http.request.uri"] == "/v2/nothing/here/manifests/latest"


def test_text_lines_carry_the_request_id_and_fields(registry_factory: Factory) -> None:
    server = registry_factory(overrides={"log": {"fields": {"zone": "eu-1"}}})
    fail_with_id(server, "text-id-7")
    made = httpx.get(f"{server.url}/v2/", timeout=10).headers["X-Request-Id"]
    server.stop()
    lines = log_lines(server)
    assert all(line.endswith("zone=eu-1") for line in lines)
    assert [line for line in lines if "http.request.id=text-id-7" in line and " 404 " in line]
    assert [line for line in lines if f"http.request.id={made}" in line]


def test_access_log_can_be_disabled_and_level_filters(registry_factory: Factory) -> None:
    server = registry_factory(overrides={"log": {"level": "warn",
                                                 "accesslog": {"disabled": True}}})
    fail_with_id(server, "quiet")
    server.stop()
    lines = log_lines(server)
    assert not [line for line in lines if "dockyard.access" in line or " INFO " in line]


def test_no_secret_in_any_log_line(
    registry_factory: Factory, tmp_path: Path
) -> None:
    """Passwords, tokens and keys from config and requests never reach the log, at debug."""
    password, secret = "hunter2-Passw0rd", "http-secret-Xyzzy-42"
    hook_password, hook_token = "hookpass-Q7", "hooktoken-Z9Z9Z9Z9"
    write_htpasswd(tmp_path / "htpasswd", {"alice": password})
    dead_hook = f"http://hook:{hook_password}@127.0.0.1:{free_port()}/hook"
    server = registry_factory(
        secret=secret,
        overrides={
            "log": {"level": "debug", "formatter": "json"},
            "auth": {"htpasswd": {"realm": "test", "path": str(tmp_path / "htpasswd")}},
            "notifications": {"endpoints": [{
                "name": "dead", "url": dead_hook, "timeout": "200ms", "backoff": "100ms",
                "headers": {"Authorization": [f"Bearer {hook_token}"]}}]},
        },
    )
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    wrong = base64.b64encode(b"alice:wrong-Passw0rd-1").decode()
    repo = random_repo("secrets")
    with httpx.Client(base_url=server.url, timeout=30, auth=("alice", password)) as client:
        push_blob(client, repo, b"secret test")
        location = start_upload(client, repo)
        state = re.search(r"_state=([^&]+)", location)
        assert state is not None
        client.get(location)
        client.get(f"/v2/{repo}/tags/list?password={password}&token={hook_token}")
    httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Basic {wrong}"}, timeout=10)
    server.stop()
    text = server.log_text()
    assert "dead" in text  # the dead endpoint was tried and logged
    for value in (password, secret, hook_password, hook_token, basic, wrong, "wrong-Passw0rd-1",
                  state.group(1)):
        assert value not in text, f"{value!r} is in the log"


def test_request_id_in_events_matches_the_access_log(
    registry_factory: Factory, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(tmp_path / "receiver")
    with receiver:
        server = registry_factory(overrides={
            "log": {"formatter": "json"},
            "notifications": {"endpoints": [{"name": "hook", "url": receiver.hook_url}]}})
        with httpx.Client(base_url=server.url, timeout=30) as client:
            push_blob(client, random_repo("ids"), b"trace me")
        event = receiver.wait_events(1)[0]
        server.stop()
    entries: list[dict[str, Any]] = [json.loads(line) for line in log_lines(server)]
    logged = [e for e in entries if e.get("http.request.id") == event["request"]["id"]]
    assert [e["http.request.method"] for e in logged] == ["PUT"]
