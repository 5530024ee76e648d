"""What a server process loads before its configuration asks for more.

Every worker holds what ``dockyard.server`` imports: a library that only one feature
needs (token auth, signed schema1 manifests, CloudFront signing: ``jwt`` and
``cryptography``, several MiB each) is imported by that feature when it is used, so that
a registry without it keeps its memory (issue 15: peak RSS below the original's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Loaded only by the features that need them (decimal: Go's float format for schema1
# manifests; difflib: suggestions for a mistyped config key).
OPTIONAL = ("bcrypt", "cryptography", "jwt", "redis", "prometheus_client", "opentelemetry",
            "botocore", "aiobotocore", "azure", "google", "asyncpg", "decimal", "difflib")


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    program = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-c", program], env={**os.environ, "PYTHONPATH": path},
        capture_output=True, text=True, check=True, timeout=60,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_server_module_loads_no_optional_library() -> None:
    loaded = _loaded_after("import dockyard.server")
    assert "aiohttp" in loaded  # the check sees what was imported
    assert loaded.isdisjoint(OPTIONAL), sorted(loaded & set(OPTIONAL))

