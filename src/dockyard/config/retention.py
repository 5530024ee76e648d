"""``retention``: tag retention policies, zot's semantics (a dockyard extension).

See :mod:`dockyard.policy.retention` for what the keys mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.config.immutabletags import tag_patterns
from dockyard.config.section import Section
from dockyard.config.tree import fail

__all__ = ["KeepTagsConfig", "RetentionConfig", "RetentionPolicyConfig", "read_retention"]


@dataclass(frozen=True, kw_only=True)
class KeepTagsConfig:
    """``retention.policies[i].keeptags[j]`` (durations in seconds; None: rule unset)."""

    patterns: tuple[str, ...] = ()
    pushed_within: float | None = None
    pulled_within: float | None = None
    most_recently_pushed_count: int = 0
    most_recently_pulled_count: int = 0


@dataclass(frozen=True, kw_only=True)
class RetentionPolicyConfig:
    """``retention.policies[i]``."""

    repositories: tuple[str, ...]
    keep_tags: tuple[KeepTagsConfig, ...] = ()
    delete_untagged: bool = True
    delete_referrers: bool = True


@dataclass(frozen=True, kw_only=True)
class RetentionConfig:
    """``retention``: ``interval`` 0 means the server does not apply it by itself."""

    policies: tuple[RetentionPolicyConfig, ...] = ()
    dry_run: bool = False
    interval: float = 0.0
    delay: float = 24 * 3600.0


def _optional_duration(s: Section, key: str) -> float | None:
    return None if s.raw(key) is None else s.duration(key, 0.0)


def read_retention(s: Section) -> RetentionConfig:
    """The validated ``retention`` section; unknown keys become warnings."""
    policies = []
    for p in s.sequence("policies"):
        repositories = p.strings("repositories")
        if not repositories:
            raise fail((*p.path, "repositories"), p.here("repositories"),
                       "required: the repository globs this policy applies to")
        keep = []
        for k in p.sequence("keeptags"):
            keep.append(KeepTagsConfig(
                patterns=tag_patterns(k, "patterns"),
                pushed_within=_optional_duration(k, "pushedwithin"),
                pulled_within=_optional_duration(k, "pulledwithin"),
                most_recently_pushed_count=k.integer("mostrecentlypushedcount"),
                most_recently_pulled_count=k.integer("mostrecentlypulledcount"),
            ))
            k.done()
        policies.append(RetentionPolicyConfig(
            repositories=repositories,
            keep_tags=tuple(keep),
            delete_untagged=p.flag("deleteuntagged", True),
            delete_referrers=p.flag("deletereferrers", True),
        ))
        p.done()
    result = RetentionConfig(
        policies=tuple(policies),
        dry_run=s.flag("dryrun"),
        interval=s.duration("interval", 0.0),
        delay=s.duration("delay", 24 * 3600.0),
    )
    s.done()
    return result
