"""The per-process LRU of manifests: bounded by count and by the bytes it holds."""

from __future__ import annotations

from dockyard.cache.manifests import ManifestLRU
from dockyard.digest import Digest
from dockyard.manifest import OCI_MANIFEST, SCHEMA1_SIGNED
from dockyard.types import StoredManifest


def _stored(body: bytes, media_type: str = OCI_MANIFEST) -> StoredManifest:
    return StoredManifest(Digest.of(body), media_type, body)


def test_the_least_recently_used_go_first_past_the_byte_bound() -> None:
    lru = ManifestLRU(size=100, max_bytes=300)
    a, b, c = (_stored(bytes([n]) * 100) for n in (1, 2, 3))
    for stored in (a, b, c):
        lru.add(stored)
    assert lru.get(a.digest) is a  # now the most recent
    d = _stored(b"\x04" * 100)
    lru.add(d)  # 400 bytes: b, the least recent, goes
    assert lru.get(b.digest) is None
    assert [lru.get(s.digest) for s in (a, c, d)] == [a, c, d]


def test_the_count_bound_still_holds() -> None:
    lru = ManifestLRU(size=2, max_bytes=1 << 20)
    first, *rest = (_stored(bytes([n])) for n in range(3))
    for stored in (first, *rest):
        lru.add(stored)
    assert lru.get(first.digest) is None
    assert all(lru.get(s.digest) is s for s in rest)


def test_adding_again_or_removing_keeps_the_byte_count_exact() -> None:
    lru = ManifestLRU(size=100, max_bytes=200)
    a, b = _stored(b"a" * 100), _stored(b"b" * 100)
    for _ in range(3):
        lru.add(a)  # counted once
    lru.add(b)
    assert lru.get(a.digest) is a and lru.get(b.digest) is b
    lru.remove(a.digest)
    c = _stored(b"c" * 100)
    lru.add(c)  # fits beside b: a's bytes were given back
    assert lru.get(b.digest) is b and lru.get(c.digest) is c


def test_what_is_not_kept() -> None:
    lru = ManifestLRU(size=100, max_bytes=100)
    big = _stored(b"x" * 101)
    small = _stored(b"y" * 50)
    lru.add(small)
    lru.add(big)  # larger than the whole bound: not kept, and nothing pushed out
    assert lru.get(big.digest) is None and lru.get(small.digest) is small
    signed = _stored(b"{}", SCHEMA1_SIGNED)
    lru.add(signed)
    assert lru.get(signed.digest) is None
