"""Content digests (``algorithm:hex``), validated before they are ever used in a path."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["CANONICAL_ALGORITHM", "Digest", "InvalidDigest", "UnsupportedAlgorithm"]

CANONICAL_ALGORITHM = "sha256"

# Hex lengths of the algorithms a registry accepts; anything else is refused outright.
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_ALGORITHMS = {name: name for name in _HEX_LENGTHS}
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_LOWER_HEX = re.compile(r"[0-9a-f]+")


class InvalidDigest(ValueError):
    """The string is not a well-formed digest."""


class UnsupportedAlgorithm(InvalidDigest):
    """The digest names an algorithm this registry does not implement."""


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated digest such as ``sha256:e3b0…``."""

    algorithm: str
    hex: str
    _text: str = field(init=False, repr=False, compare=False)
    """``algorithm:hex``, made once: a digest's text is taken several times a request
    (headers, paths, events), and the same string each time keeps its hash with it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text", f"{self.algorithm}:{self.hex}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate ``text``; raise :class:`InvalidDigest` if it is not usable."""
        # Digests recur (a manifest's layers in every PUT and link read): remember them.
        return _parse_cached(text) if cls is Digest else cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Digest:
        if not _GRAMMAR.fullmatch(text):
            raise InvalidDigest(f"invalid digest {text[:200]!r}")
        algorithm, _, hexpart = text.partition(":")
        length = _HEX_LENGTHS.get(algorithm)
        if length is None:
            raise UnsupportedAlgorithm(f"unsupported digest algorithm {algorithm!r}")
        if len(hexpart) != length or not _LOWER_HEX.fullmatch(hexpart):
            raise InvalidDigest(f"invalid {algorithm} digest {text[:200]!r}")
        # The table's own name string, not a copy per digest (one per cached entry).
        return cls(_ALGORITHMS[algorithm], hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = CANONICAL_ALGORITHM) -> Digest:
        """The digest of ``data`` (for small payloads such as manifests)."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return self._text


# Failures are not cached (lru_cache keeps only returned values). An entry costs
# about 380 bytes (the text, the Digest, the LRU's link): 4,096 of them 1.5 MiB
# of every worker's resident memory, where 16,384 held 6.5 MiB (issue 15), for a
# miss that costs 1.4 us.
_parse_cached = functools.lru_cache(maxsize=4096)(Digest._parse)
