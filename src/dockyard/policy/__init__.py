"""Tag policies: immutable tags and retention rules (pure decisions, no I/O).

The registry layer asks :class:`ImmutableTags` before a tag moves or goes; the
retention job (:mod:`dockyard.maintenance.retention`) feeds what it read about a
repository to :func:`plan_repository` and applies the plan. Patterns follow zot:
repositories are globs with ``**`` (doublestar), tags are regular expressions
searched anywhere in the tag (Go's ``regexp.MatchString``).
"""

from dockyard.policy.immutable import ImmutableTagRule, ImmutableTags
from dockyard.policy.patterns import compile_glob, compile_tag_pattern
from dockyard.policy.retention import (
    KeepTags,
    ManifestFacts,
    RetentionPlan,
    RetentionPolicy,
    TagFacts,
    plan_repository,
    policy_for,
)

__all__ = [
    "ImmutableTagRule",
    "ImmutableTags",
    "KeepTags",
    "ManifestFacts",
    "RetentionPlan",
    "RetentionPolicy",
    "TagFacts",
    "compile_glob",
    "compile_tag_pattern",
    "plan_repository",
    "policy_for",
]
