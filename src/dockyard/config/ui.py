"""``ui``: dockyard's web UI at ``<http.prefix>/ui/`` (a dockyard extension)."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config.section import Section


@dataclass(frozen=True, kw_only=True)
class UIConfig:
    """``ui``: ``enabled`` (default true) serves the web UI on the main listener."""

    enabled: bool = True


def read_ui(s: Section) -> UIConfig:
    """The validated ``ui`` section; unknown keys become warnings."""
    result = UIConfig(enabled=s.flag("enabled", True))
    s.done()
    return result
