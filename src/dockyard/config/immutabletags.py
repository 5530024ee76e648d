"""``immutabletags``: tags that never move or go once pushed (a dockyard extension)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.config.section import Section
from dockyard.config.tree import Map, Node, Seq, describe, fail

__all__ = ["ImmutableTagsRuleConfig", "read_immutabletags", "tag_patterns"]


@dataclass(frozen=True, kw_only=True)
class ImmutableTagsRuleConfig:
    """One rule: repository globs (``**`` crosses ``/``) and tag regular expressions;
    an empty list matches everything."""

    repositories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def tag_patterns(s: Section, key: str) -> tuple[str, ...]:
    """The regular expressions under ``key``, each checked to compile."""
    found = s.strings(key)
    for i, pattern in enumerate(found):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise fail((*s.path, key, i), s.here(key),
                       f"bad regular expression {pattern!r}: {exc}") from None
    return found


def read_immutabletags(
    node: Node | None, warnings: list[str]
) -> tuple[ImmutableTagsRuleConfig, ...]:
    """The validated ``immutabletags`` list; unknown keys in a rule become warnings."""
    if node is None:
        return ()
    if not isinstance(node, Seq):
        raise fail(("immutabletags",), node, f"expected a list of rules, got {describe(node)}")
    rules = []
    for i, item in enumerate(node.items):
        if not isinstance(item, Map):
            raise fail(("immutabletags", i), item, f"expected a mapping, got {describe(item)}")
        s = Section(item, ("immutabletags", i), warnings)
        rules.append(ImmutableTagsRuleConfig(repositories=s.strings("repositories"),
                                             tags=tag_patterns(s, "tags")))
        s.done()
    return tuple(rules)
