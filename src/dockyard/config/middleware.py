"""``middleware``: storage middleware is read here; registry and repository ones warn.

``middleware.storage`` is a list of ``{name, options, disabled}`` entries, as in
distribution; the names and options are checked when the driver is built (each
middleware validates its own options, like a driver its parameters), so a bad value
stops the start naming ``middleware.storage.<name>.<key>``. An entry with
``disabled: true`` is read and skipped. dockyard has no registry or repository
middleware: entries there are warnings, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.config.section import Section
from dockyard.config.tree import Map, Node, Seq, at, describe, fail, is_null, plain

__all__ = ["MiddlewareConfig", "MiddlewareEntry", "read_middleware"]


@dataclass(frozen=True, kw_only=True)
class MiddlewareEntry:
    """One ``middleware.storage`` entry: which middleware, and its free-form options."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MiddlewareConfig:
    """``middleware``: the storage middleware to wrap the driver in, outermost last."""

    storage: tuple[MiddlewareEntry, ...] = ()


def read_middleware(node: Node | None, warnings: list[str]) -> MiddlewareConfig:
    """The storage middleware entries; warns about registry and repository ones."""
    if node is None or is_null(node):
        return MiddlewareConfig()
    if not isinstance(node, Map):
        raise fail(("middleware",), node, f"expected a mapping, got {describe(node)}")
    storage: list[MiddlewareEntry] = []
    for kind, entries in node.items.items():
        if is_null(entries) or (isinstance(entries, Seq) and not entries.items):
            continue
        if kind == "storage":
            storage.extend(_storage_entries(entries, warnings))
            continue
        names = [
            str(plain(e.items.get("name")))
            for e in (entries.items if isinstance(entries, Seq) else [])
            if isinstance(e, Map) and "name" in e.items
        ]
        warnings.append(
            f"middleware.{kind}: dockyard has no {kind} middleware; ignoring "
            f"{', '.join(names) or 'the entries'}{at(entries.where)}"
        )
    return MiddlewareConfig(storage=tuple(storage))


def _storage_entries(entries: Node, warnings: list[str]) -> list[MiddlewareEntry]:
    path = ("middleware", "storage")
    if not isinstance(entries, Seq):
        raise fail(path, entries, f"expected a list, got {describe(entries)}")
    out = []
    for i, item in enumerate(entries.items):
        s = Section(item, (*path, i), warnings)
        name = s.required("name").strip().lower()
        disabled = s.flag("disabled")
        options = s.raw("options")
        if options is not None and not isinstance(options, Map):
            problem = f"expected a mapping, got {describe(options)}"
            raise fail((*path, i, "options"), options, problem)
        s.done()
        if not disabled:
            out.append(MiddlewareEntry(name=name, options=plain(options) or {}))
    return out
