"""Keys distribution reads that dockyard does not: told apart from misspellings.

A key dockyard does not read is either one of these ("supported by distribution but
not by dockyard": a migrated config may carry it) or unknown to both, most likely a
misspelling, reported with the nearest key (see :mod:`dockyard.config.section`).
"""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.config.tree import KeyPath

# Paths as in config.yml; "*" stands for any list index. From distribution 2.8 and 3.0.
_KEYS = frozenset(
    {
        ("reporting",),
        ("policy",),
        ("log", "hooks"),
        ("http", "h2c"),
        ("http", "tls", "letsencrypt"),
        ("auth", "token", "signingalgorithms"),
        ("validation", "manifests", "indexes"),
        *(
            ("redis", key)
            for key in (
                "addrs",
                "username",
                "clientname",
                "mastername",
                "maxretries",
                "pooltimeout",
                "poolsize",
                "minidleconns",
                "maxidleconns",
                "connmaxidletime",
                "connmaxlifetime",
            )
        ),
    }
)


def _pattern(path: KeyPath) -> tuple[str, ...]:
    return tuple("*" if isinstance(part, int) else part for part in path)


def distribution_only(path: KeyPath) -> bool:
    """Whether distribution reads the key at ``path``, which dockyard does not."""
    return _pattern(path) in _KEYS


def distribution_siblings(section: KeyPath) -> Iterable[str]:
    """The keys of ``section`` that only distribution reads (candidates for a misspelling)."""
    pattern = _pattern(section)
    return (key[-1] for key in _KEYS if key[:-1] == pattern)
