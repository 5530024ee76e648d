"""``catalog``: paging of ``/v2/read_catalog``."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config.section import Section


@dataclass(frozen=True, kw_only=True)
class CatalogConfig:
    """``catalog``: the largest page ``/v2/read_catalog`` returns (0 or less means 1000)."""

    max_entries: int = 1000


def read_catalog(s: Section) -> CatalogConfig:
    """The validated ``catalog`` section; unknown keys become warnings."""
    entries = s.integer("maxentries", 1000, minimum=-(2**63))
    result = CatalogConfig(max_entries=entries if entries > 0 else 1000)  # as distribution
    s.done()
    return result
