"""``validation``: which foreign-layer URLs manifests may carry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dockyard.config.section import Section
from dockyard.config.tree import Seq, fail


@dataclass(frozen=True, kw_only=True)
class URLValidationConfig:
    """``validation.manifests.urls``: patterns searched (unanchored) in foreign-layer URLs.

    With validation on and both lists empty, no URL is allowed (distribution's rule).
    """

    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class ManifestValidationConfig:
    """``validation.manifests``."""

    urls: URLValidationConfig = field(default_factory=URLValidationConfig)


@dataclass(frozen=True, kw_only=True)
class ValidationConfig:
    """``validation``; ``disabled`` is true only if ``disabled`` is set and the older
    ``enabled`` is not, as in distribution."""

    disabled: bool = False
    manifests: ManifestValidationConfig = field(default_factory=ManifestValidationConfig)


def _patterns(s: Section, key: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for i, pattern in enumerate(s.strings(key)):
        try:
            out.append(re.compile(pattern))
        except re.error as exc:
            node = s.items[key]
            assert isinstance(node, Seq)
            raise fail(
                (*s.path, key, i), node.items[i], f"invalid regular expression {pattern!r}: {exc}"
            ) from None
    return tuple(out)


def read_validation(s: Section) -> ValidationConfig:
    """The validated ``validation`` section; unknown keys become warnings."""
    manifests = s.section("manifests")
    urls = manifests.section("urls")
    disabled, enabled = s.flag("disabled"), s.flag("enabled")
    result = ValidationConfig(
        disabled=disabled and not enabled,
        manifests=ManifestValidationConfig(
            urls=URLValidationConfig(allow=_patterns(urls, "allow"), deny=_patterns(urls, "deny"))
        ),
    )
    for section in (urls, manifests, s):
        section.done()
    return result
