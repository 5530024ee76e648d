"""Reading one mapping of the raw tree into typed values; keys left unread are reported."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from dockyard.config.distribution import distribution_only, distribution_siblings
from dockyard.config.tree import (
    ConfigError,
    KeyPath,
    Leaf,
    Map,
    Node,
    Seq,
    at,
    describe,
    fail,
    is_null,
    key_path,
)
from dockyard.config.values import parse_duration, split_host_port

Headers = Mapping[str, tuple[str, ...]]

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class UnknownKeyWarning(str):
    """A warning about ``key``, which neither dockyard nor distribution reads: a misspelling,
    most likely (``check-config --strict`` and ``serve --strict`` refuse the configuration)."""

    key: str

    def __new__(cls, message: str, key: str) -> UnknownKeyWarning:
        self = super().__new__(cls, message)
        self.key = key
        return self

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return str(self), self.key


def refuse_unknown_keys(warnings: Iterable[str]) -> None:
    """``--strict``: raises :class:`ConfigError` naming the unknown keys among ``warnings``."""
    unknown = [w.key for w in warnings if isinstance(w, UnknownKeyWarning)]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ConfigError(
            f"unknown configuration key{plural} {', '.join(unknown)}: refused with --strict",
            unknown[0],
        )


def _shared_prefix(a: str, b: str) -> int:
    pairs = zip(a, b, strict=False)
    return next((i for i, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)))


def unread_key(path: KeyPath, where: str, known: Iterable[str]) -> str:
    """The warning for the key at ``path`` that nothing reads; ``known``: its readable siblings.

    A key of distribution's is "supported by distribution but not by dockyard"; any
    other is an :class:`UnknownKeyWarning` naming the nearest known key, if one is near.
    """
    name = key_path(path)
    if distribution_only(path):
        return (
            f'unsupported configuration key "{name}"{at(where)}: '
            "supported by distribution but not by dockyard, ignored"
        )
    key = str(path[-1])
    candidates = sorted({*known, *distribution_siblings(path[:-1])})
    import difflib  # only for a config with an unknown key (0.2 MiB in every process)

    close = difflib.get_close_matches(key, candidates, n=3)
    # Typos seldom touch the first letters: "adress" means "addr", not "headers".
    near = max(close, key=lambda c: _shared_prefix(c, key), default="")
    hint = f'; did you mean "{key_path((*path[:-1], near))}"?' if near else ""
    return UnknownKeyWarning(f'unknown configuration key "{name}"{at(where)}{hint}', name)


class Section:
    """A mapping being read into a dataclass; unread keys become warnings in :meth:`done`."""

    def __init__(self, node: Node | None, path: KeyPath, warnings: list[str]) -> None:
        self.path, self.warnings = path, warnings
        self.used: set[str] = set()
        self.items: dict[str, Node] = {}
        self.where = node.where if node else ""
        if isinstance(node, Map):
            self.items = node.items
        elif node is not None and not is_null(node):
            raise fail(path, node, f"expected a mapping, got {describe(node)}")

    def raw(self, key: str) -> Node | None:
        """The node under ``key``, None if absent or null; marks the key as read."""
        self.used.add(key)
        node = self.items.get(key)
        return None if is_null(node) else node

    def section(self, key: str) -> Section:
        return Section(self.raw(key), (*self.path, key), self.warnings)

    def text(self, key: str, default: str = "") -> str:
        node = self.raw(key)
        if node is None:
            return default
        if not isinstance(node, Leaf):
            raise fail((*self.path, key), node, f"expected a string, got {describe(node)}")
        return node.text

    def here(self, key: str) -> Node:
        """The node under ``key`` or, if absent, a stand-in located at this section."""
        return self.items.get(key) or Leaf(None, "", self.where)

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise fail((*self.path, key), self.here(key), "required")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        node = self.raw(key)
        if node is None:
            return default
        if not (isinstance(node, Leaf) and isinstance(node.value, bool)):
            raise fail((*self.path, key), node, f"expected a boolean, got {describe(node)}")
        return node.value

    def integer(self, key: str, default: int = 0, minimum: int = 0) -> int:
        node = self.raw(key)
        if node is None:
            return default
        if not (
            isinstance(node, Leaf)
            and isinstance(node.value, int)
            and not isinstance(node.value, bool)
        ):
            raise fail((*self.path, key), node, f"expected an integer, got {describe(node)}")
        if node.value < minimum:
            raise fail((*self.path, key), node, f"must be at least {minimum}, got {node.value}")
        return node.value

    def duration(self, key: str, default: float) -> float:
        node = self.raw(key)
        if node is None:
            return default
        value = node.value if isinstance(node, Leaf) else None
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise fail((*self.path, key), node, str(exc)) from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value) or value < 0:
                raise fail((*self.path, key), node, f"must be a non-negative duration, got {value}")
            return float(value)
        raise fail(
            (*self.path, key), node, f'expected a duration such as "10s", got {describe(node)}'
        )

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key).lower() or default
        if value not in choices:
            raise fail(
                (*self.path, key),
                self.here(key),
                f"expected one of {', '.join(choices)}, got {value!r}",
            )
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        node = self.raw(key)
        if node is None:
            return ()
        path = (*self.path, key)
        if not isinstance(node, Seq):
            raise fail(path, node, f"expected a list of strings, got {describe(node)}")
        out = []
        for i, item in enumerate(node.items):
            if not isinstance(item, Leaf) or item.value is None:
                raise fail((*path, i), item, f"expected a string, got {describe(item)}")
            out.append(item.text)
        return tuple(out)

    def sequence(self, key: str) -> list[Section]:
        node = self.raw(key)
        if node is None:
            return []
        path = (*self.path, key)
        if not isinstance(node, Seq):
            raise fail(path, node, f"expected a list, got {describe(node)}")
        return [Section(item, (*path, i), self.warnings) for i, item in enumerate(node.items)]

    def headers(self, key: str) -> dict[str, tuple[str, ...]]:
        section = self.section(key)
        out = {}
        for name in section.items:
            if not _HEADER_NAME.fullmatch(name):
                raise fail((*section.path, name), section.items[name], "invalid header name")
            values = section.strings(name)
            if any("\r" in v or "\n" in v for v in values):
                raise fail((*section.path, name), section.items[name], "line break in value")
            out[name] = values
        return out

    def url(self, key: str, required: bool = False) -> str:
        value = self.required(key) if required else self.text(key)
        try:
            parts = urlsplit(value)
            absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
        except ValueError:
            absolute = False
        if value and not absolute:
            raise fail(
                (*self.path, key),
                self.here(key),
                f"expected an absolute http(s) URL, got {value!r}",
            )
        return value

    def address(self, key: str, default: str = "", required: bool = False) -> str:
        value = self.required(key) if required else self.text(key, default)
        if value:
            try:
                split_host_port(value)
            except ValueError as exc:
                raise fail((*self.path, key), self.here(key), str(exc)) from None
        return value

    def done(self) -> None:
        """Reports every key of this mapping that was not read (see :func:`unread_key`)."""
        for key, node in self.items.items():
            if key not in self.used:
                self.warnings.append(unread_key((*self.path, key), node.where, self.used))
