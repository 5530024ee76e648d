"""Repository globs and tag patterns, with the semantics zot gives them.

A repository pattern is a doublestar glob, as zot's ``repositories`` (and Harbor's
rules): ``*`` and ``?`` stay within one path component, ``**`` crosses ``/``
(``prod/**`` matches ``prod/a`` and ``prod/a/b``), ``[abc]``/``[!abc]`` are classes,
``{a,b}`` alternatives. A tag pattern is a regular expression searched in the tag,
as zot's ``keepTags.patterns`` (``v1`` matches ``v10``: anchor with ``^v1$``).
"""

from __future__ import annotations

import re

__all__ = ["compile_glob", "compile_tag_pattern"]


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression matching what the glob ``pattern`` matches, whole.

    Raises ValueError (naming the problem) for an unclosed class or brace.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    braces = 0
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                # "a/**/b" also matches "a/b"; a trailing "**" matches anything below.
                if pattern.startswith("/", i) and (not out or out[-1].endswith("/")):
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if end < 0:
                raise ValueError(f"unclosed [ in {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body.startswith(("!", "^"))
            if negate:
                body = body[1:]
            out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
            i = end
        elif c == "{":
            braces += 1
            out.append("(?:")
        elif c == "}" and braces:
            braces -= 1
            out.append(")")
        elif c == "," and braces:
            out.append("|")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    if braces:
        raise ValueError(f"unclosed {{ in {pattern!r}")
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error as exc:
        raise ValueError(f"bad pattern {pattern!r}: {exc}") from None


def compile_tag_pattern(pattern: str) -> re.Pattern[str]:
    """The tag pattern as a regular expression (searched, not anchored); ValueError if bad."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
