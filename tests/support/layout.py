"""Check a registry's storage as distribution lays it out, reading the files themselves.

``check_layout(files)`` walks ``docker/registry/v2/`` of a directory (:class:`DirectoryFiles`)
or of a bucket (:class:`BucketFiles`) and reports what a crash or a bad commit could have
broken: a blob whose bytes do not hash to its path, a stray file under ``blobs/``, a link
(``_layers``, ``_manifests/revisions``, tags) that names a missing blob, a tag whose
revision is not linked. Temporary files of atomic writes (``.tmp-*``, which the registry
never lists) are counted, not reported; uploads in progress are not looked at.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["BucketFiles", "DirectoryFiles", "LayoutReport", "StoredFiles", "check_layout"]

V2 = "docker/registry/v2"
#: Files read at once by :func:`check_layout` (boto3 clients may be shared by threads).
_READERS = 8
_BLOB = re.compile(r"blobs/(?P<alg>sha256|sha512)/(?P<prefix>[0-9a-f]{2})/(?P<hex>[0-9a-f]+)/data")
_DIGEST = re.compile(r"(?P<alg>sha256|sha512):(?P<hex>[0-9a-f]{64}|[0-9a-f]{128})")
# repositories/<name>/_manifests/tags/<tag>/(current|index/<alg>/<hex>)/link
_TAG_LINK = re.compile(r"repositories/(?P<repo>.+)/_manifests/tags/(?P<tag>[^/]+)/.+/link")
# repositories/<name>/(_layers|_manifests/revisions)/<alg>/<hex>/link (signatures and
# referrers of a revision have links below it: they too must name stored blobs)
_LINK = re.compile(
    r"repositories/(?P<repo>.+?)/(?P<kind>_layers|_manifests/revisions)/"
    r"(?P<alg>sha256|sha512)/(?P<hex>[0-9a-f]+)/(?P<below>.+/)?link"
)


class StoredFiles(Protocol):
    """The files of one registry's storage, as keys relative to ``docker/registry/v2/``."""

    def paths(self) -> Iterator[str]: ...

    def read(self, key: str) -> bytes: ...


class DirectoryFiles:
    """The filesystem driver's files below ``root`` (its ``rootdirectory``)."""

    def __init__(self, root: Path) -> None:
        self.base = Path(root) / V2

    def paths(self) -> Iterator[str]:
        # os.walk skips a directory removed while it walks (a finished upload's clean-up
        # runs after its response); Path.rglob raises FileNotFoundError there.
        for top, _dirs, names in os.walk(self.base):
            for name in names:
                yield (Path(top) / name).relative_to(self.base).as_posix()

    def read(self, key: str) -> bytes:
        return (self.base / key).read_bytes()


class BucketFiles:
    """The S3 driver's objects in ``bucket`` (below ``rootdirectory``), through boto3."""

    def __init__(self, s3: Any, bucket: str, rootdirectory: str = "") -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = "/".join(p for p in (rootdirectory.strip("/"), V2) if p) + "/"

    def paths(self) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            for item in page.get("Contents", []):
                yield str(item["Key"])[len(self.prefix):]

    def read(self, key: str) -> bytes:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        data: bytes = body.read()
        return data


@dataclass
class LayoutReport:
    """What :func:`check_layout` found; ``problems`` is empty when storage is sound."""

    blobs: int = 0
    links: int = 0
    temporary: int = 0
    problems: list[str] = field(default_factory=list)


def check_layout(files: StoredFiles) -> LayoutReport:
    """Re-hash every blob and follow every link (see the module docstring).

    Files are read a few at a time (on a bucket, each read is a round trip); the
    report does not depend on the order.
    """
    report = LayoutReport()
    blobs: list[str] = []
    links: list[str] = []
    for key in files.paths():
        if key.rsplit("/", 1)[-1].startswith(".tmp-"):
            report.temporary += 1
        elif key.startswith("blobs/"):
            blobs.append(key)
        elif key.endswith("/link") and "/_uploads/" not in key:
            links.append(key)
    report.blobs, report.links = len(blobs), len(links)
    stored, linked = set(blobs), set(links)
    with ThreadPoolExecutor(_READERS) as pool:
        for problems in pool.map(lambda key: _check_blob(files, key), blobs):
            report.problems.extend(problems)
        for problems in pool.map(lambda key: _check_link(files, key, stored, linked), links):
            report.problems.extend(problems)
    return report


def _blob_key(algorithm: str, hexdigest: str) -> str:
    return f"blobs/{algorithm}/{hexdigest[:2]}/{hexdigest}/data"


def _check_blob(files: StoredFiles, key: str) -> list[str]:
    match = _BLOB.fullmatch(key)
    if match is None or match["prefix"] != match["hex"][:2]:
        return [f"stray file under blobs/: {key}"]
    actual = hashlib.new(match["alg"], files.read(key)).hexdigest()
    if actual != match["hex"]:
        return [f"blob {key} holds content of {match['alg']}:{actual}"]
    return []


def _check_link(files: StoredFiles, key: str, blobs: set[str], links: set[str]) -> list[str]:
    text = files.read(key).decode("ascii", "replace").strip()
    target = _DIGEST.fullmatch(text)
    if target is None:
        return [f"link {key} holds {text[:200]!r}, not a digest"]
    if _blob_key(target["alg"], target["hex"]) not in blobs:
        return [f"link {key} names {text}, which is not stored"]
    if (tag := _TAG_LINK.fullmatch(key)) is not None:
        revision = (f"repositories/{tag['repo']}/_manifests/revisions/"
                    f"{target['alg']}/{target['hex']}/link")
        if revision not in links:
            return [f"tag link {key} names {text}, not a revision of {tag['repo']}"]
        return []
    link = _LINK.fullmatch(key)
    if link is None:
        return [f"link in an unknown place: {key}"]
    # A link's own path names the content too: canonical (sha256) links hold themselves.
    own = link["below"] is None and link["alg"] == "sha256"
    if own and (target["alg"], target["hex"]) != ("sha256", link["hex"]):
        return [f"link {key} names {text}, another blob"]
    return []
