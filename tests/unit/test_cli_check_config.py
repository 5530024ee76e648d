"""``dockyard check-config`` rejects what ``dockyard serve`` would reject, naming the key,
and names unknown keys (refused with ``--strict``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _check(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yml"
    config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "check-config", *args, str(config)],
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


MISSPELT = """\
version: 0.1
storage:
  filesystem:
    rootdirectroy: /srv/registry
http:
  adress: 127.0.0.1:5000
  secret: s3cret
"""


def test_misspelt_keys_are_named_unknown_with_the_nearest_key(tmp_path: Path) -> None:
    done = _check(tmp_path, MISSPELT)
    config = tmp_path / "config.yml"
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f'warning: unknown configuration key "storage.filesystem.rootdirectroy" ({config}, '
        'line 4); did you mean "storage.filesystem.rootdirectory"?',
        f'warning: unknown configuration key "http.adress" ({config}, line 6); '
        'did you mean "http.addr"?',
        "configuration OK",
    ]


def test_strict_refuses_unknown_keys(tmp_path: Path) -> None:
    done = _check(tmp_path, MISSPELT, "--strict")
    assert done.returncode == 2
    assert "configuration OK" not in done.stdout
    assert done.stdout.count("warning: unknown configuration key") == 2
    assert done.stderr == (
        "dockyard: configuration error: unknown configuration keys "
        "storage.filesystem.rootdirectroy, http.adress: refused with --strict\n"
    )


def test_distributions_keys_are_told_apart_and_pass_strict(tmp_path: Path) -> None:
    done = _check(
        tmp_path,
        f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {tmp_path}}}\n"
        "http: {secret: s3cret}\nreporting:\n  bugsnag: {apikey: k}\n",
        "--strict",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f'warning: unsupported configuration key "reporting" ({tmp_path / "config.yml"}, '
        "line 5): supported by distribution but not by dockyard, ignored",
        "configuration OK",
    ]


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    done = _check(tmp_path, "version: 0.1\nstorage:\n  inmemory: {\nhttp: x\n")
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"dockyard: configuration error: malformed YAML ({tmp_path / 'config.yml'}, line 5"
    ), done.stderr
    assert "Traceback" not in done.stderr
