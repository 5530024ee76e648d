"""tests.support.layout finds what the crash campaign looks for (a checker that cannot
fail would let the campaign pass whatever the registry did)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.layout import V2, DirectoryFiles, check_layout


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(base: Path, key: str, data: bytes) -> None:
    path = base / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_sound_storage_has_no_problems(tmp_path: Path) -> None:
    base = tmp_path / V2
    layer, manifest = b"layer", b"{}"
    for data in (layer, manifest):
        _write(base, f"blobs/sha256/{_digest(data)[:2]}/{_digest(data)}/data", data)
    repo = "repositories/a/b"
    _write(base, f"{repo}/_layers/sha256/{_digest(layer)}/link",
           f"sha256:{_digest(layer)}".encode())
    revision = f"sha256:{_digest(manifest)}".encode()
    _write(base, f"{repo}/_manifests/revisions/sha256/{_digest(manifest)}/link", revision)
    _write(base, f"{repo}/_manifests/tags/t/current/link", revision)
    _write(base, f"{repo}/_manifests/tags/t/index/sha256/{_digest(manifest)}/link", revision)
    _write(base, f"{repo}/_uploads/u/data", b"partial")
    _write(base, "blobs/sha256/ab/.tmp-123", b"torn")

    report = check_layout(DirectoryFiles(tmp_path))
    assert (report.blobs, report.links, report.temporary, report.problems) == (2, 4, 1, [])


def test_corrupt_blobs_and_dangling_links_are_reported(tmp_path: Path) -> None:
    base = tmp_path / V2
    good, missing = b"good", b"never stored"
    _write(base, f"blobs/sha256/{_digest(good)[:2]}/{_digest(good)}/data", b"other bytes")
    _write(base, "blobs/sha256/zz/stray", b"")
    repo = "repositories/r"
    _write(base, f"{repo}/_layers/sha256/{_digest(missing)}/link",
           f"sha256:{_digest(missing)}".encode())
    _write(base, f"{repo}/_layers/sha256/{_digest(good)}/link", b"garbage")
    _write(base, f"{repo}/_manifests/tags/t/current/link", f"sha256:{_digest(good)}".encode())

    problems = check_layout(DirectoryFiles(tmp_path)).problems
    assert len(problems) == 5, problems
    assert any("holds content of" in p for p in problems)
    assert any("stray file" in p for p in problems)
    assert any("not stored" in p for p in problems)
    assert any("not a digest" in p for p in problems)
    assert any("not a revision" in p for p in problems)
