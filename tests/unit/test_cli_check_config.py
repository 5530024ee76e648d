"""``dockyard check-config`` rejects what ``dockyard serve`` would reject, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yml"
    config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "check-config", str(config)],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": SRC, "PATH": "/usr/bin"},
    )


def test_good_config_passes(tmp_path: Path) -> None:
    done = _check(tmp_path, f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path}}}\n"
                            "http: {secret: s3cret}\n")
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stdout


def test_bad_driver_parameter_is_named(tmp_path: Path) -> None:
    done = _check(tmp_path, "version: 0.1\nstorage:\n  s3: {bucket: b, region: us-east-1, "
                            "chunksize: 12}\n")
    assert done.returncode == 2
    assert "storage.s3.chunksize" in done.stderr
    assert "configuration OK" not in done.stdout


def test_inmemory_with_workers_is_refused(tmp_path: Path) -> None:
    done = _check(tmp_path, "version: 0.1\nstorage: {inmemory: {}}\nhttp: {workers: 2}\n")
    assert done.returncode == 2
    assert "http.workers" in done.stderr


def test_bad_tls_files_are_named(tmp_path: Path) -> None:
    done = _check(tmp_path, f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path}}}\n"
                            f"http:\n  tls: {{certificate: {tmp_path}/nope.crt, "
                            f"key: {tmp_path}/nope.key}}\n")
    assert done.returncode == 2
    assert "http.tls.certificate" in done.stderr
