"""Grammar of repository names and tags (OCI distribution spec, distribution/reference)."""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "is_valid_repository_name", "is_valid_tag"]

MAX_NAME_LENGTH = 255

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def is_valid_repository_name(name: str) -> bool:
    """True if ``name`` is a repository name the spec allows (so it is safe in a path)."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    """True if ``tag`` matches ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""
    return _TAG.fullmatch(tag) is not None
