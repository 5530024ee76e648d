"""Retention rules as pure functions: what a repository keeps and what goes, and why.

Semantics of zot's retention (``pkg/retention``), keys in distribution's lowercase style:

* The first policy with a ``repositories`` glob matching the repository applies; a
  repository no policy matches is left alone.
* A policy without ``keeptags`` keeps every tag. With ``keeptags``, each tag is
  judged by the first entry whose ``patterns`` it matches (no patterns: every tag);
  a tag no entry matches goes. An entry without rules keeps the tags it matched;
  with rules it keeps those that *any* rule keeps: ``pushedwithin``,
  ``pulledwithin`` (also kept when pushed within that time, so a new tag is never
  deleted for not having been pulled yet), ``mostrecentlypushedcount``,
  ``mostrecentlypulledcount``.
* A tag whose push time is unknown is kept (zot keeps tags without statistics);
  an immutable tag (``immutabletags``) is always kept.
* Manifests are kept when a kept tag names them, when they are children of a kept
  index, or referrers of a kept manifest; so are manifests pushed less than
  ``delay`` ago. With ``deleteuntagged`` (the default) every other manifest goes;
  without it only tags are removed. With ``deletereferrers`` (the default) a
  referrer goes with its subject; without it referrers are always kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dockyard.digest import Digest
from dockyard.policy.immutable import ImmutableTags
from dockyard.policy.patterns import compile_glob, compile_tag_pattern

__all__ = [
    "KeepTags",
    "ManifestDecision",
    "ManifestFacts",
    "RetentionPlan",
    "RetentionPolicy",
    "TagDecision",
    "TagFacts",
    "plan_repository",
    "policy_for",
]


@dataclass(frozen=True, slots=True)
class KeepTags:
    """One ``keeptags`` entry: which tags it judges and the rules that keep them."""

    patterns: tuple[str, ...] = ()
    pushed_within: float | None = None
    pulled_within: float | None = None
    most_recently_pushed_count: int = 0
    most_recently_pulled_count: int = 0
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(compile_tag_pattern(p) for p in self.patterns))

    def judges(self, tag: str) -> bool:
        return not self._compiled or any(p.search(tag) for p in self._compiled)

    @property
    def has_rules(self) -> bool:
        return (self.pushed_within is not None or self.pulled_within is not None
                or self.most_recently_pushed_count > 0 or self.most_recently_pulled_count > 0)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """``retention.policies[index]``."""

    index: int
    repositories: tuple[str, ...]
    keep_tags: tuple[KeepTags, ...] = ()
    delete_untagged: bool = True
    delete_referrers: bool = True
    _globs: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_globs", tuple(compile_glob(p) for p in self.repositories))

    def applies_to(self, repository: str) -> bool:
        return any(g.match(repository) for g in self._globs)

    @property
    def name(self) -> str:
        return f"retention.policies[{self.index}]"


def policy_for(
    policies: Iterable[RetentionPolicy], repository: str
) -> RetentionPolicy | None:
    """The first policy whose ``repositories`` match ``repository`` (zot's order)."""
    return next((p for p in policies if p.applies_to(repository)), None)


@dataclass(frozen=True, slots=True)
class TagFacts:
    """A tag as the job read it: the manifest it names, when pushed and last pulled
    (seconds since the epoch; None when unknown)."""

    tag: str
    digest: Digest
    pushed: float | None
    pulled: float | None = None


@dataclass(frozen=True, slots=True)
class ManifestFacts:
    """A manifest revision: when pushed, the manifests it lists, the one it refers to."""

    digest: Digest
    pushed: float
    children: tuple[Digest, ...] = ()
    subject: Digest | None = None


@dataclass(frozen=True, slots=True)
class TagDecision:
    tag: str
    digest: Digest
    keep: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ManifestDecision:
    digest: Digest
    keep: bool
    reason: str


@dataclass(slots=True)
class RetentionPlan:
    """What one repository keeps and loses; ``policy`` names the policy applied."""

    repository: str
    policy: str
    tags: list[TagDecision] = field(default_factory=list)
    manifests: list[ManifestDecision] = field(default_factory=list)

    @property
    def doomed_tags(self) -> list[TagDecision]:
        return [t for t in self.tags if not t.keep]

    @property
    def doomed_manifests(self) -> list[ManifestDecision]:
        return [m for m in self.manifests if not m.keep]


def _duration(seconds: float) -> str:
    if seconds % 86400 == 0 and seconds:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0 and seconds:
        return f"{int(seconds // 3600)}h"
    return f"{seconds:g}s"


def _judge_group(
    entry: KeepTags, name: str, group: Sequence[TagFacts], now: float
) -> dict[str, str]:
    """The tags of ``group`` that ``entry`` keeps, each with the first rule that does."""
    if not entry.has_rules:
        return {t.tag: f"{name}.patterns" for t in group}
    kept: dict[str, str] = {}

    def keep(tags: Iterable[TagFacts], rule: str) -> None:
        for t in tags:
            kept.setdefault(t.tag, f"{name}.{rule}")

    if entry.pushed_within is not None:
        since = now - entry.pushed_within
        keep((t for t in group if t.pushed is not None and t.pushed > since),
             f"pushedwithin={_duration(entry.pushed_within)}")
    if entry.pulled_within is not None:
        since = now - entry.pulled_within
        keep((t for t in group if (t.pulled is not None and t.pulled > since)
              or (t.pushed is not None and t.pushed > since)),
             f"pulledwithin={_duration(entry.pulled_within)}")
    if entry.most_recently_pushed_count > 0:
        ordered = sorted(group, key=lambda t: (-(t.pushed or 0.0), t.tag))
        keep(ordered[: entry.most_recently_pushed_count],
             f"mostrecentlypushedcount={entry.most_recently_pushed_count}")
    if entry.most_recently_pulled_count > 0:
        ordered = sorted(group, key=lambda t: (-(t.pulled or 0.0), t.tag))
        keep(ordered[: entry.most_recently_pulled_count],
             f"mostrecentlypulledcount={entry.most_recently_pulled_count}")
    return kept


def _judge_tags(
    policy: RetentionPolicy, repository: str, tags: Sequence[TagFacts], now: float,
    immutable: ImmutableTags | None,
) -> list[TagDecision]:
    decisions: dict[str, TagDecision] = {}
    groups: dict[int, list[TagFacts]] = {}
    for t in tags:
        rule = immutable.rule_for(repository, t.tag) if immutable else None
        if rule is not None:
            decisions[t.tag] = TagDecision(t.tag, t.digest, True, f"immutabletags[{rule.index}]")
        elif not policy.keep_tags:
            decisions[t.tag] = TagDecision(t.tag, t.digest, True, f"{policy.name}: no keeptags")
        elif t.pushed is None:
            decisions[t.tag] = TagDecision(t.tag, t.digest, True, "push time unknown")
        else:
            index = next((i for i, k in enumerate(policy.keep_tags) if k.judges(t.tag)), None)
            if index is None:
                decisions[t.tag] = TagDecision(
                    t.tag, t.digest, False, f"{policy.name}: matches no keeptags patterns")
            else:
                groups.setdefault(index, []).append(t)
    for index, group in groups.items():
        name = f"{policy.name}.keeptags[{index}]"
        kept = _judge_group(policy.keep_tags[index], name, group, now)
        for t in group:
            reason = kept.get(t.tag)
            decisions[t.tag] = TagDecision(
                t.tag, t.digest, reason is not None, reason or f"{name}: no rule keeps it")
    return [decisions[t.tag] for t in tags]


def plan_repository(
    policy: RetentionPolicy,
    repository: str,
    tags: Sequence[TagFacts],
    manifests: Sequence[ManifestFacts],
    *,
    now: float,
    delay: float,
    immutable: ImmutableTags | None = None,
) -> RetentionPlan:
    """What ``policy`` keeps of ``repository`` at time ``now`` (see the module docstring).

    ``manifests`` are the repository's revisions; ``delay`` protects manifests pushed
    less than that long ago.
    """
    plan = RetentionPlan(repository, policy.name)
    plan.tags = _judge_tags(policy, repository, tags, now, immutable)
    known = {m.digest: m for m in manifests}
    referrers: dict[Digest, list[Digest]] = {}
    for m in manifests:
        if m.subject is not None:
            referrers.setdefault(m.subject, []).append(m.digest)
    roots: dict[Digest, str] = {}
    for t in plan.tags:
        if t.keep:
            roots.setdefault(t.digest, f"tag {t.tag} kept")
    for m in manifests:
        if now - m.pushed < delay:
            roots.setdefault(m.digest, f"pushed less than retention.delay "
                                       f"({_duration(delay)}) ago")
        if not policy.delete_untagged:
            roots.setdefault(m.digest, f"{policy.name}: deleteuntagged is false")
        if m.subject is not None and not policy.delete_referrers:
            roots.setdefault(m.digest, f"{policy.name}: deletereferrers is false")
    kept: dict[Digest, str] = {}
    stack = list(roots.items())
    while stack:
        digest, reason = stack.pop()
        if digest in kept:
            continue
        kept[digest] = reason
        node = known.get(digest)
        if node is not None:
            stack.extend((c, f"child of kept {digest}") for c in node.children)
        stack.extend((r, f"referrer of kept {digest}") for r in referrers.get(digest, ()))
    lost_tags: dict[Digest, list[str]] = {}
    for t in plan.doomed_tags:
        lost_tags.setdefault(t.digest, []).append(t.tag)
    for m in manifests:
        if m.digest in kept:
            plan.manifests.append(ManifestDecision(m.digest, True, kept[m.digest]))
        elif m.digest in lost_tags:
            plan.manifests.append(ManifestDecision(
                m.digest, False, f"untagged once {', '.join(lost_tags[m.digest])} go"))
        elif m.subject is not None:
            plan.manifests.append(ManifestDecision(
                m.digest, False, f"referrer of {m.subject}, which is not kept"))
        else:
            plan.manifests.append(ManifestDecision(
                m.digest, False, f"untagged for more than retention.delay ({_duration(delay)})"))
    return plan
