"""schemathesis drives dockyard's OpenAPI description against a real ``dockyard serve``.

Every phase runs (the spec's examples, boundary and negative "coverage" cases, random
fuzzing, and stateful sequences along the spec's links: start an upload, send chunks,
finish it, fetch the blob...). Every input must get no 5xx and leave no traceback in
the server's log, and every answer must be what the description says (status, content
type, headers, body schema), which keeps the description honest.

Bounded for CI (3 cases per operation and phase, about 2,000 requests: some 45 s on an
idle machine); a big run::

    DOCKYARD_FUZZ_EXAMPLES=1000 python3 -m pytest -q tests/fuzz/test_openapi_campaign.py -s

``DOCKYARD_FUZZ_SEED`` replays a run (the seed is printed, and named in any failure).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.support.api import digest_of, push_blob
from tests.support.servers import RegistryProcess, process_env

from dockyard.api.openapi import document

RegistryFactory = Callable[..., RegistryProcess]

# Cases per operation and phase: few in CI, thousands in total for a big run.
EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "3"))
SEED = int(os.environ.get("DOCKYARD_FUZZ_SEED", str(random.randrange(2**32))))
ROOT = Path(__file__).resolve().parents[2]
OPENAPI = "/dockyard/v1/openapi.json"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)

def _seed_repository(url: str) -> None:
    """What the spec's examples name: ``library/example`` with the empty blob (the
    example digest) and a manifest tagged ``latest``, so some cases get past 404."""
    with httpx.Client(base_url=url, timeout=30) as http:
        empty = push_blob(http, "library/example", b"")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": empty,
                "size": 0,
            },
            "layers": [],
        }
        body = json.dumps(manifest).encode()
        pushed = http.put(
            "/v2/library/example/manifests/latest",
            content=body,
            headers={"Content-Type": manifest["mediaType"]},
        )
        assert pushed.status_code == 201, pushed.text
        assert pushed.headers["Docker-Content-Digest"] == digest_of(body)


def _tracebacks(log: str) -> list[str]:
    return [part[:3000] for part in re.split(r"(?=Traceback \(most recent)", log)[1:]]


@pytest.fixture
def server(registry_factory: RegistryFactory) -> RegistryProcess:
    return registry_factory()


def test_no_input_reaches_a_server_error(server: RegistryProcess, tmp_path: Path) -> None:
    tool = shutil.which("schemathesis") or shutil.which("st")
    if tool is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    print(
        f"\nschemathesis seed {SEED}, {EXAMPLES} examples per operation and phase "
        f"(replay: DOCKYARD_FUZZ_SEED={SEED} DOCKYARD_FUZZ_EXAMPLES={EXAMPLES})"
    )
    _seed_repository(server.url)
    env = process_env(
        {
            "SCHEMATHESIS_HOOKS": "tests.fuzz.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
        },
        source=False,
    )
    # fmt: off
    command = [
        tool, "run", f"{server.url}{OPENAPI}",
        # No 5xx; and every answer is what the description says.
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "30",
        "--no-color",
    ]
    # fmt: on
    run = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=3600, check=False
    )
    summary = run.stdout[-8000:]
    print(summary)
    generated = re.search(r"(\d+) generated", run.stdout)
    assert run.returncode == 0, f"seed {SEED}: schemathesis found failures\n{summary}"
    assert generated is not None and int(generated.group(1)) > 0, summary
    tracebacks = _tracebacks(server.log_text())
    assert not tracebacks, f"seed {SEED}: tracebacks in the server log:\n" + "\n".join(tracebacks)
    assert server.running, f"seed {SEED}: the server died\n{server.log_tail()}"


def test_the_served_document_is_the_shipped_one(server: RegistryProcess) -> None:
    served = httpx.get(f"{server.url}{OPENAPI}", timeout=30)
    assert served.status_code == 200
    assert served.headers["Content-Type"].startswith("application/json")
    assert served.json() == document()
    assert httpx.head(f"{server.url}{OPENAPI}", timeout=30).status_code == 200


def test_below_a_prefix_the_document_names_it(registry_factory: RegistryFactory) -> None:
    server = registry_factory(overrides={"http": {"prefix": "/registry/"}})
    served = httpx.get(f"{server.url}/registry{OPENAPI}", timeout=30)
    assert served.status_code == 200, served.text
    assert served.json()["servers"] == [{"url": "/registry"}]
