"""The storage layout, pinned string by string to distribution 2.x (``registry/storage/paths.go``).

Every expected value below is written out in full rather than assembled, so a change
to any function of :mod:`dockyard.storage.paths` breaks this table, and a new
function that is not pinned here fails :func:`test_every_function_is_pinned`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from dockyard.digest import Digest
from dockyard.storage import paths

S256 = Digest.parse("sha256:" + "ab" + "c" * 62)
S256_B = Digest.parse("sha256:" + "0f" + "1" * 62)
S512 = Digest.parse("sha512:" + "9e" + "d" * 126)
HEX256 = "ab" + "c" * 62
HEX256_B = "0f" + "1" * 62
HEX512 = "9e" + "d" * 126
V2 = "/docker/registry/v2"
REPO = f"{V2}/repositories/library/ubuntu"
DEEP = f"{V2}/repositories/a/b-c/d.e/f__g"
UUID = "d7ac1b0e-3a0f-4bd1-9c47-1f2f0ae8d3c1"

# (function, arguments, the path distribution uses)
TABLE: list[tuple[Callable[..., str], tuple[Any, ...], str]] = [
    (paths.blobs_root, (), f"{V2}/blobs"),
    (paths.blob_dir_path, (S256,), f"{V2}/blobs/sha256/ab/{HEX256}"),
    (paths.blob_dir_path, (S512,), f"{V2}/blobs/sha512/9e/{HEX512}"),
    (paths.blob_data_path, (S256,), f"{V2}/blobs/sha256/ab/{HEX256}/data"),
    (paths.blob_data_path, (S512,), f"{V2}/blobs/sha512/9e/{HEX512}/data"),
    (paths.repository_path, ("library/ubuntu",), REPO),
    (paths.repository_path, ("a/b-c/d.e/f__g",), DEEP),
    (paths.layers_root, ("library/ubuntu",), f"{REPO}/_layers"),
    (paths.layer_link_path, ("library/ubuntu", S256), f"{REPO}/_layers/sha256/{HEX256}/link"),
    (paths.layer_link_path, ("library/ubuntu", S512), f"{REPO}/_layers/sha512/{HEX512}/link"),
    (paths.manifest_revisions_root, ("library/ubuntu",), f"{REPO}/_manifests/revisions"),
    (
        paths.manifest_revision_path,
        ("library/ubuntu", S256),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}",
    ),
    (
        paths.manifest_revision_link_path,
        ("library/ubuntu", S256),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}/link",
    ),
    (
        paths.manifest_signatures_path,
        ("library/ubuntu", S256),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}/signatures",
    ),
    (
        paths.manifest_signature_link_path,
        ("library/ubuntu", S256, S256_B),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}/signatures/sha256/{HEX256_B}/link",
    ),
    # dockyard's own (distribution 2.8 has no referrers): beside signatures, same shape.
    (
        paths.manifest_referrers_path,
        ("library/ubuntu", S256),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}/referrers",
    ),
    (
        paths.manifest_referrer_link_path,
        ("library/ubuntu", S256, S512),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}/referrers/sha512/{HEX512}/link",
    ),
    (paths.tags_root, ("library/ubuntu",), f"{REPO}/_manifests/tags"),
    (
        paths.referrers_indexed_path,
        ("library/ubuntu",),
        f"{REPO}/_manifests/referrers-indexed",
    ),
    (paths.tag_path, ("library/ubuntu", "22.04"), f"{REPO}/_manifests/tags/22.04"),
    (
        paths.tag_current_link_path,
        ("library/ubuntu", "latest"),
        f"{REPO}/_manifests/tags/latest/current/link",
    ),
    (paths.tag_index_path, ("library/ubuntu", "v1"), f"{REPO}/_manifests/tags/v1/index"),
    (
        paths.tag_index_entry_link_path,
        ("library/ubuntu", "v1", S256),
        f"{REPO}/_manifests/tags/v1/index/sha256/{HEX256}/link",
    ),
    (paths.uploads_root, ("library/ubuntu",), f"{REPO}/_uploads"),
    (paths.upload_path, ("library/ubuntu", UUID), f"{REPO}/_uploads/{UUID}"),
    (paths.upload_data_path, ("library/ubuntu", UUID), f"{REPO}/_uploads/{UUID}/data"),
    (
        paths.upload_startedat_path,
        ("library/ubuntu", UUID),
        f"{REPO}/_uploads/{UUID}/startedat",
    ),
    (
        paths.upload_startedat_in,
        (f"{REPO}/_uploads/{UUID}",),
        f"{REPO}/_uploads/{UUID}/startedat",
    ),
    (
        paths.link_in,
        (f"{REPO}/_manifests/revisions/sha256/{HEX256}/referrers/sha256/{HEX256_B}",),
        f"{REPO}/_manifests/revisions/sha256/{HEX256}/referrers/sha256/{HEX256_B}/link",
    ),
    (paths.link_dir, (f"{REPO}/_layers/sha256/{HEX256}/link",), f"{REPO}/_layers/sha256/{HEX256}"),
    (
        paths.link_dir,
        (f"{REPO}/_manifests/tags/v1/current/link",),
        f"{REPO}/_manifests/tags/v1/current",
    ),
    (
        paths.upload_hashstates_path,
        ("library/ubuntu", UUID, "sha256"),
        f"{REPO}/_uploads/{UUID}/hashstates/sha256",
    ),
    (
        paths.upload_hashstate_path,
        ("library/ubuntu", UUID, "sha256", 0),
        f"{REPO}/_uploads/{UUID}/hashstates/sha256/0",
    ),
    (
        paths.upload_hashstate_path,
        ("a/b-c/d.e/f__g", UUID, "sha512", 16777216),
        f"{DEEP}/_uploads/{UUID}/hashstates/sha512/16777216",
    ),
]


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    TABLE,
    ids=[f"{f.__name__}-{i}" for i, (f, _, _) in enumerate(TABLE)],
)
def test_path(function: Callable[..., str], args: tuple[Any, ...], expected: str) -> None:
    assert function(*args) == expected


def test_roots() -> None:
    assert paths.ROOT == "/docker/registry/v2"
    assert paths.REPOSITORIES_ROOT == "/docker/registry/v2/repositories"


def test_every_function_is_pinned() -> None:
    exported = {
        name for name in paths.__all__ if inspect.isfunction(getattr(paths, name))
    }
    defined = {
        name
        for name, value in vars(paths).items()
        if inspect.isfunction(value) and value.__module__ == paths.__name__
        and not name.startswith("_")
    }
    pinned = {f.__name__ for f, _, _ in TABLE}
    assert defined <= exported, f"public but not exported: {defined - exported}"
    assert exported == pinned, f"not pinned: {exported - pinned}; unknown: {pinned - exported}"


def test_paths_are_driver_paths() -> None:
    """Every path is absolute, clean and accepted by the driver's path check."""
    from dockyard.storage.drivers.base import check_path

    for function, args, _ in TABLE:
        path = function(*args)
        assert check_path(path, "test") == path
        assert not path.endswith("/")


def test_accepted_upload_ids_make_valid_paths() -> None:
    """An upload id the upload store accepts always makes a valid driver path.

    (An id with ``=`` once passed the store and failed the driver's path check: 503.)
    """
    from dockyard.storage.drivers.base import PATH_PATTERN, check_path
    from dockyard.storage.uploads import UPLOAD_ID_PATTERN

    alphabet = [chr(c) for c in range(32, 127)]
    for char in alphabet:
        upload_id = f"a{char}b"
        if UPLOAD_ID_PATTERN.fullmatch(upload_id):
            assert check_path(paths.upload_data_path("r", upload_id), "test")
    for odd in ("abc=", "..", ".", "a/b", "a.b", "", "x" * 129):
        assert not UPLOAD_ID_PATTERN.fullmatch(odd), odd
    assert PATH_PATTERN.fullmatch(paths.upload_path("r", "u" * 128))
