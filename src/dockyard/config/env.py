"""``REGISTRY_*`` environment overrides applied to the raw tree, distribution's rules
(described in :mod:`dockyard.config`)."""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.config.reader import YamlReader
from dockyard.config.storage import STORAGE_SUBSECTIONS
from dockyard.config.tree import (
    ConfigError,
    KeyPath,
    Leaf,
    Map,
    Node,
    Seq,
    expand_type_name,
    is_null,
    key_path,
)

_ENV_PREFIX = "REGISTRY_"
_ENV_SKIPPED = frozenset({"REGISTRY_CONFIGURATION_PATH"})
_ENV_ALIASES: dict[tuple[str, ...], dict[str, str]] = {
    ("notifications",): {"EVENTCONFIG": "events"},
    ("health",): {"FILECHECKERS": "file", "HTTPCHECKERS": "http", "TCPCHECKERS": "tcp"},
    ("compatibility", "schema1"): {"TRUSTKEY": "signingkeyfile"},
}
# Keys that hold lists, so that an override can create them ("*": any key or index).
_LIST_KEYS = (
    ("notifications", "endpoints"),
    ("notifications", "endpoints", "*", "ignoredmediatypes"),
    ("notifications", "endpoints", "*", "ignore", "mediatypes"),
    ("notifications", "endpoints", "*", "ignore", "actions"),
    ("notifications", "endpoints", "*", "headers", "*"),
    ("http", "headers", "*"),
    ("http", "tls", "clientcas"),
    ("http", "tls", "ciphersuites"),
    ("health", "file"),
    ("health", "http"),
    ("health", "http", "*", "headers", "*"),
    ("health", "tcp"),
    ("validation", "manifests", "urls", "allow"),
    ("validation", "manifests", "urls", "deny"),
    ("middleware", "*"),
    ("log", "hooks"),
)


def _is_list_key(path: KeyPath) -> bool:
    return any(
        len(pattern) == len(path)
        and all(p in ("*", str(q)) for p, q in zip(pattern, path, strict=True))
        for pattern in _LIST_KEYS
    )


def apply_env(root: Map, environ: Mapping[str, str], warnings: list[str]) -> None:
    """Applies the ``REGISTRY_*`` variables of ``environ`` to ``root``, in name order."""
    for name in sorted(environ):
        if not name.startswith(_ENV_PREFIX) or name in _ENV_SKIPPED:
            continue
        parts = name.split("_")[1:]
        if name != name.upper() or not all(parts):
            warnings.append(
                f"ignoring environment variable {name}: expected REGISTRY_ and upper-case "
                "key names joined by single underscores"
            )
            continue
        if parts[0] == "VERSION":
            warnings.append(f"ignoring environment variable {name}: version cannot be overridden")
            continue
        value = YamlReader(name, True, warnings).read(environ[name])
        _override(root, parts, value or Leaf(None, "", f"from {name}"), name, warnings)


def _override(root: Map, parts: list[str], value: Node, name: str, warnings: list[str]) -> None:
    where = f"from {name}"
    node: Map | Seq = root
    path: KeyPath = ()
    for i, part in enumerate(parts):
        key: str | int
        if isinstance(node, Seq):
            if not (part.isascii() and part.isdigit()):
                raise ConfigError(
                    f"{key_path(path)}: {name} needs a list index, not {part!r}", key_path(path)
                )
            key = int(part)
            if key > len(node.items):
                raise ConfigError(
                    f"{key_path((*path, key))}: {name} skips an index; the list has "
                    f"{len(node.items)} items",
                    key_path((*path, key)),
                )
            if key == len(node.items):
                node.items.append(Leaf(None, "", where))
            child: Node | None = node.items[key]
        else:
            key = _env_key(node, path, part)
            child = node.items.get(key)
        if i == len(parts) - 1:
            if path == () and key in ("storage", "auth"):
                expanded = expand_type_name(value)
                if key == "storage" and expanded is not value and isinstance(child, Map):
                    assert isinstance(expanded, Map)
                    for sub in STORAGE_SUBSECTIONS:
                        if sub in child.items:
                            expanded.items.setdefault(sub, child.items[sub])
                value = expanded
            _put(node, key, value)
            return
        if is_null(child):
            child = Seq([], where) if _is_list_key((*path, key)) else Map({}, where)
            _put(node, key, child)
        elif isinstance(child, Leaf):
            warnings.append(
                f'ignoring environment variable {name}: "{key_path((*path, key))}" is a value, '
                "not a section"
            )
            return
        assert isinstance(child, Map | Seq)
        node, path = child, (*path, key)


def _env_key(node: Map, path: KeyPath, part: str) -> str:
    alias = _ENV_ALIASES.get(tuple(str(p) for p in path), {}).get(part)
    if alias:
        return alias
    lower = part.lower()
    if lower in node.items:
        return lower
    return next((k for k in node.items if k.upper() == part), lower)


def _put(node: Map | Seq, key: str | int, value: Node) -> None:
    if isinstance(node, Seq):
        assert isinstance(key, int)
        node.items[key] = value
    else:
        assert isinstance(key, str)
        node.items[key] = value
