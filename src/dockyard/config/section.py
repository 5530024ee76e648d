"""Reading one mapping of the raw tree into typed values; keys left unread are reported."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from dockyard.config.tree import (
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
        for key, node in self.items.items():
            if key not in self.used:
                self.warnings.append(
                    f'unsupported configuration key "{key_path((*self.path, key))}"{at(node.where)}'
                )
