"""Tag policies: glob and tag patterns, immutable-tag rules, the retention engine,
and their configuration (``immutabletags``, ``retention``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dockyard.background import build_immutable_tags, build_retention_policies
from dockyard.config import ConfigError, load_config
from dockyard.digest import Digest
from dockyard.policy import (
    ImmutableTagRule,
    ImmutableTags,
    KeepTags,
    ManifestFacts,
    RetentionPolicy,
    TagFacts,
    compile_glob,
    plan_repository,
    policy_for,
)

DAY = 86400.0
NOW = 1_000 * DAY


def d(n: int) -> Digest:
    return Digest.parse(f"sha256:{n:064x}")


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("infra/*", "infra/a", True),
        ("infra/*", "infra/a/b", False),
        ("tmp/**", "tmp/a/b", True),
        ("tmp/**", "tmp", False),
        ("**", "any/thing/at/all", True),
        ("**/cache", "cache", True),
        ("**/cache", "a/b/cache", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("app-?", "app-1", True),
        ("app-?", "app-12", False),
        ("app-[0-9]", "app-7", True),
        ("app-[!0-9]", "app-7", False),
        ("{prod,stage}/*", "stage/web", True),
        ("{prod,stage}/*", "dev/web", False),
        ("a.b", "axb", False),
    ],
)
def test_repository_globs(pattern: str, name: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).match(name)) is matches


@pytest.mark.parametrize("pattern", ["a[bc", "{a,b"])
def test_bad_globs_raise(pattern: str) -> None:
    with pytest.raises(ValueError, match="unclosed"):
        compile_glob(pattern)


def test_immutable_rules_first_match_and_regex_search() -> None:
    rules = ImmutableTags((
        ImmutableTagRule(0, ("prod/**",), (r"^v\d+\.\d+\.\d+$",)),
        ImmutableTagRule(1, (), ("release",)),
    ))
    assert rules.rule_for("prod/web", "v1.2.3") == rules.rules[0]
    assert rules.rule_for("prod/web", "v1.2") is None
    assert rules.rule_for("dev/web", "v1.2.3") is None
    # Searched, as zot's patterns: "release" anywhere in the tag, any repository.
    rule = rules.rule_for("dev/web", "pre-release-2")
    assert rule is not None and rule.index == 1
    assert "immutabletags[1]" in rule.describe()
    assert not ImmutableTags()


# -- retention ---------------------------------------------------------------------------


def tag(name: str, n: int, pushed_days_ago: float, pulled_days_ago: float | None = None
        ) -> TagFacts:
    pulled = None if pulled_days_ago is None else NOW - pulled_days_ago * DAY
    return TagFacts(name, d(n), NOW - pushed_days_ago * DAY, pulled)


def manifests_of(tags: list[TagFacts], extra: list[ManifestFacts] = ()) -> list[ManifestFacts]:  # type: ignore[assignment]
    found = {t.digest: ManifestFacts(t.digest, t.pushed or 0.0) for t in tags}
    for m in extra:
        found[m.digest] = m
    return list(found.values())


def plan(policy: RetentionPolicy, tags: list[TagFacts], extra: list[ManifestFacts] = (),  # type: ignore[assignment]
         delay: float = DAY, immutable: ImmutableTags | None = None
         ) -> tuple[dict[str, str], dict[str, str], dict[Digest, str]]:
    result = plan_repository(policy, "repo", tags, manifests_of(tags, extra), now=NOW,
                             delay=delay, immutable=immutable)
    kept = {t.tag: t.reason for t in result.tags if t.keep}
    gone = {t.tag: t.reason for t in result.tags if not t.keep}
    gone_manifests = {m.digest: m.reason for m in result.manifests if not m.keep}
    return kept, gone, gone_manifests


TAGS = [
    tag("v1", 1, 30, pulled_days_ago=1),
    tag("v2", 2, 20),
    tag("v3", 3, 10, pulled_days_ago=5),
    tag("dev-a", 4, 3),
    tag("dev-b", 5, 2, pulled_days_ago=40),
]


def test_no_keeptags_keeps_every_tag_and_only_untagged_old_manifests_go() -> None:
    untagged = [ManifestFacts(d(10), NOW - 5 * DAY), ManifestFacts(d(11), NOW - 0.5 * DAY)]
    kept, gone, manifests = plan(RetentionPolicy(0, ("**",)), TAGS, untagged)
    assert set(kept) == {"v1", "v2", "v3", "dev-a", "dev-b"} and not gone
    assert set(manifests) == {d(10)}  # d(11) is younger than delay
    assert "retention.delay" in manifests[d(10)]


def test_patterns_alone_keep_what_they_match() -> None:
    policy = RetentionPolicy(0, ("**",), (KeepTags(patterns=("^v",)),))
    kept, gone, manifests = plan(policy, TAGS)
    assert set(kept) == {"v1", "v2", "v3"}
    assert kept["v1"] == "retention.policies[0].keeptags[0].patterns"
    assert set(gone) == {"dev-a", "dev-b"}
    assert "matches no keeptags patterns" in gone["dev-a"]
    assert set(manifests) == {d(4), d(5)}


def test_pushed_within() -> None:
    policy = RetentionPolicy(0, ("**",), (KeepTags(pushed_within=15 * DAY),))
    kept, gone, _ = plan(policy, TAGS)
    assert set(kept) == {"v3", "dev-a", "dev-b"}
    assert kept["v3"].endswith("pushedwithin=15d")
    assert set(gone) == {"v1", "v2"} and "no rule keeps it" in gone["v1"]


def test_pulled_within_also_keeps_recent_pushes() -> None:
    policy = RetentionPolicy(0, ("**",), (KeepTags(pulled_within=7 * DAY),))
    kept, gone, _ = plan(policy, TAGS)
    # v1 and v3 pulled within 7d; dev-a and dev-b pushed within 7d (zot's DaysPull).
    assert set(kept) == {"v1", "v3", "dev-a", "dev-b"}
    assert set(gone) == {"v2"}


def test_most_recently_pushed_count() -> None:
    policy = RetentionPolicy(0, ("**",), (KeepTags(most_recently_pushed_count=2),))
    kept, _gone, _ = plan(policy, TAGS)
    assert set(kept) == {"dev-a", "dev-b"}
    assert kept["dev-a"].endswith("mostrecentlypushedcount=2")


def test_most_recently_pulled_count() -> None:
    policy = RetentionPolicy(0, ("**",), (KeepTags(most_recently_pulled_count=2),))
    kept, _, _ = plan(policy, TAGS)
    assert set(kept) == {"v1", "v3"}


def test_rules_combined_are_or_and_entries_by_first_pattern() -> None:
    policy = RetentionPolicy(0, ("**",), (
        KeepTags(patterns=("^v",), most_recently_pushed_count=1, pulled_within=2 * DAY),
        KeepTags(patterns=("^dev",), pushed_within=2.5 * DAY),
    ))
    kept, gone, _ = plan(policy, TAGS)
    # v3 newest push; v1 pulled a day ago; dev-b pushed 2 days ago.
    assert set(kept) == {"v1", "v3", "dev-b"}
    assert kept["v3"].startswith("retention.policies[0].keeptags[0].")
    assert kept["dev-b"] == "retention.policies[0].keeptags[1].pushedwithin=60h"
    assert set(gone) == {"v2", "dev-a"}


def test_shared_digest_is_kept_if_any_tag_keeps_it() -> None:
    tags = [tag("old", 1, 50), tag("new", 1, 1)]
    policy = RetentionPolicy(0, ("**",), (KeepTags(pushed_within=7 * DAY),))
    kept, gone, manifests = plan(policy, tags)
    assert set(kept) == {"new"} and set(gone) == {"old"} and not manifests


def test_immutable_and_unknown_push_time_keep_tags() -> None:
    tags = [*TAGS, TagFacts("nodate", d(9), None)]
    policy = RetentionPolicy(0, ("**",), (KeepTags(patterns=("^nothing$",)),))
    immutable = ImmutableTags((ImmutableTagRule(0, ("**",), ("^v1$",)),))
    kept, gone, _ = plan(policy, tags, immutable=immutable)
    assert kept == {"v1": "immutabletags[0]", "nodate": "push time unknown"}
    assert len(gone) == 4


def test_children_and_referrers() -> None:
    child_a = ManifestFacts(d(20), NOW - 90 * DAY)
    child_b = ManifestFacts(d(21), NOW - 90 * DAY)
    signature = ManifestFacts(d(22), NOW - 90 * DAY, subject=d(1))
    orphan_sig = ManifestFacts(d(23), NOW - 90 * DAY, subject=d(2))
    sig_of_sig = ManifestFacts(d(24), NOW - 90 * DAY, subject=d(22))
    tags = [tag("keep", 1, 90), tag("drop", 2, 90)]
    index = ManifestFacts(d(1), NOW - 90 * DAY, children=(d(20), d(21)))
    extra = [index, child_a, child_b, signature, orphan_sig, sig_of_sig]
    policy = RetentionPolicy(0, ("**",), (KeepTags(patterns=("^keep$",)),))
    _kept, gone, manifests = plan(policy, tags, extra)
    assert set(gone) == {"drop"}
    assert set(manifests) == {d(2), d(23)}
    assert "untagged once drop go" in manifests[d(2)]
    assert "referrer of" in manifests[d(23)]
    # deletereferrers false: the orphaned signature stays.
    policy = RetentionPolicy(0, ("**",), (KeepTags(patterns=("^keep$",)),),
                             delete_referrers=False)
    _, _, manifests = plan(policy, tags, extra)
    assert set(manifests) == {d(2)}
    # deleteuntagged false: only the tag goes.
    policy = RetentionPolicy(0, ("**",), (KeepTags(patterns=("^keep$",)),),
                             delete_untagged=False)
    _, gone, manifests = plan(policy, tags, extra)
    assert set(gone) == {"drop"} and not manifests


def test_policy_for_takes_the_first_match() -> None:
    policies = [RetentionPolicy(0, ("infra/*",)), RetentionPolicy(1, ("**",))]
    assert policy_for(policies, "infra/x") is policies[0]
    assert policy_for(policies, "infra/x/y") is policies[1]
    assert policy_for(policies[:1], "app") is None


# -- configuration -----------------------------------------------------------------------

BASE = """\
version: 0.1
storage:
  inmemory: {}
http:
  secret: s
"""


def load(tmp_path: Path, extra: str) -> tuple[object, list[str]]:
    path = tmp_path / "config.yml"
    path.write_text(BASE + textwrap.dedent(extra))
    return load_config(path, {})


def test_config_sections(tmp_path: Path) -> None:
    config, warnings = load(tmp_path, """\
        immutabletags:
          - repositories: ["prod/**"]
            tags: ['^v[0-9]']
        retention:
          dryrun: true
          interval: 12h
          delay: 2h
          policies:
            - repositories: ["infra/*", "tmp/**"]
              deletereferrers: false
              keeptags:
                - patterns: ["^v"]
                  pushedwithin: 720h
                  mostrecentlypushedcount: 5
                - pulledwithin: 168h
                  mostrecentlypulledcount: 3
            - repositories: ["**"]
              deleteuntagged: false
        """)
    assert warnings == []
    from dockyard.config import Config
    assert isinstance(config, Config)
    assert config.immutabletags[0].repositories == ("prod/**",)
    r = config.retention
    assert (r.dry_run, r.interval, r.delay) == (True, 12 * 3600, 2 * 3600)
    assert r.policies[0].keep_tags[0].pushed_within == 720 * 3600
    assert r.policies[0].keep_tags[1].pulled_within == 168 * 3600
    assert r.policies[0].keep_tags[1].most_recently_pulled_count == 3
    assert r.policies[0].delete_referrers is False and r.policies[1].delete_untagged is False
    policies = build_retention_policies(config)
    assert policies[0].keep_tags[0].most_recently_pushed_count == 5
    assert build_immutable_tags(config).rule_for("prod/a/b", "v2") is not None


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("immutabletags:\n  - tags: ['(']\n", "immutabletags[0].tags[0]"),
        ("immutabletags: {a: b}\n", "immutabletags"),
        ("retention:\n  policies:\n    - keeptags: []\n", "retention.policies[0].repositories"),
        ("retention:\n  policies:\n    - repositories: [a]\n      keeptags:\n"
         "        - mostrecentlypushedcount: -1\n",
         "retention.policies[0].keeptags[0].mostrecentlypushedcount"),
        ("retention:\n  interval: soon\n", "retention.interval"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    assert str(caught.value).startswith(key), str(caught.value)


def test_bad_glob_is_a_config_error(tmp_path: Path) -> None:
    config, _ = load(tmp_path, "immutabletags:\n  - repositories: ['a[b']\n")
    from dockyard.config import Config
    assert isinstance(config, Config)
    with pytest.raises(ConfigError, match=r"^immutabletags\[0\]: unclosed \["):
        build_immutable_tags(config)


def test_unknown_rule_key_warns(tmp_path: Path) -> None:
    _, warnings = load(tmp_path, "retention:\n  policies:\n    - repositories: [a]\n"
                                 "      keeptag: []\n")
    assert any("retention.policies[0].keeptag" in w for w in warnings)
