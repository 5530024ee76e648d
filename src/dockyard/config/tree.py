"""The raw configuration tree (YAML from the file or the environment, before
validation) and :class:`ConfigError`, whose message names the key and where it was written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConfigError(Exception):
    """The configuration cannot be used; the message starts with the key path."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Leaf:
    """A scalar, with its text as written and where it was written."""

    value: Any  # the constructed scalar; None for null
    text: str  # the scalar as written
    where: str  # "config.yml, line 3", "from REGISTRY_X" or ""


@dataclass
class Map:
    """A mapping of the raw tree."""

    items: dict[str, Node]
    where: str


@dataclass
class Seq:
    """A list of the raw tree."""

    items: list[Node]
    where: str


Node = Leaf | Map | Seq
KeyPath = tuple[str | int, ...]


def key_path(path: KeyPath) -> str:
    """``("http", "tls", "clientcas", 0)`` → ``http.tls.clientcas[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def at(where: str) -> str:
    """`` (config.yml, line 3)`` to append to a message, or nothing if unknown."""
    return f" ({where})" if where else ""


def fail(path: KeyPath, node: Node | None, problem: str) -> ConfigError:
    """The error for the key at ``path``, located at ``node``."""
    key = key_path(path) or "configuration"
    return ConfigError(f"{key}: {problem}{at(node.where if node else '')}", key)


def describe(node: Node) -> str:
    """What a value is, for messages: ``a mapping``, ``null``, ``'text'``, ``12``."""
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    if node.value is None:
        return "null"
    return repr(node.value) if isinstance(node.value, str) else node.text


def is_null(node: Node | None) -> bool:
    """True for an absent key, ``null`` and an empty value."""
    return node is None or (isinstance(node, Leaf) and node.value is None)


def plain(node: Node | None) -> Any:
    """The raw tree as plain dicts, lists and scalars (free-form parameters)."""
    if node is None:
        return None
    if isinstance(node, Map):
        return {k: plain(v) for k, v in node.items.items()}
    if isinstance(node, Seq):
        return [plain(v) for v in node.items]
    return node.value


def expand_type_name(node: Node) -> Node:
    """``storage: s3`` or ``auth: silly`` means a section with no parameters."""
    if isinstance(node, Leaf) and isinstance(node.value, str) and node.value:
        return Map({node.value: Map({}, node.where)}, node.where)
    return node
