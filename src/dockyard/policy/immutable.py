"""Immutable tags (``immutabletags``): once such a tag exists, it never moves or goes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockyard.policy.patterns import compile_glob, compile_tag_pattern

__all__ = ["ImmutableTagRule", "ImmutableTags"]


@dataclass(frozen=True, slots=True)
class ImmutableTagRule:
    """``immutabletags[index]``: tags matching ``tags`` in repositories matching
    ``repositories`` (an empty list matches every one, as in zot's retention)."""

    index: int
    repositories: tuple[str, ...]
    tags: tuple[str, ...]
    _repos: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _tags: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_repos", tuple(compile_glob(p) for p in self.repositories))
        object.__setattr__(self, "_tags", tuple(compile_tag_pattern(p) for p in self.tags))

    def matches(self, repository: str, tag: str) -> bool:
        repo_ok = not self._repos or any(p.match(repository) for p in self._repos)
        return repo_ok and (not self._tags or any(p.search(tag) for p in self._tags))

    def describe(self) -> str:
        """The rule as the error body names it."""
        return (f"immutabletags[{self.index}] (repositories {list(self.repositories)}, "
                f"tags {list(self.tags)})")


@dataclass(frozen=True, slots=True)
class ImmutableTags:
    """Every configured rule; the first that matches a tag makes it immutable."""

    rules: Sequence[ImmutableTagRule] = ()

    def rule_for(self, repository: str, tag: str) -> ImmutableTagRule | None:
        for rule in self.rules:
            if rule.matches(repository, tag):
                return rule
        return None

    def __bool__(self) -> bool:
        return bool(self.rules)
