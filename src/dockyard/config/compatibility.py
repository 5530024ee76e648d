"""``compatibility``: schema1 manifests."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.config.section import Section


@dataclass(frozen=True, kw_only=True)
class Schema1Config:
    """``compatibility.schema1``."""

    signing_key_file: str = ""
    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class CompatibilityConfig:
    """``compatibility``."""

    schema1: Schema1Config = field(default_factory=Schema1Config)


def read_compatibility(s: Section) -> CompatibilityConfig:
    """The validated ``compatibility`` section; unknown keys become warnings."""
    schema1 = s.section("schema1")
    result = CompatibilityConfig(
        schema1=Schema1Config(
            signing_key_file=schema1.text("signingkeyfile"), enabled=schema1.flag("enabled")
        )
    )
    schema1.done()
    s.done()
    return result
