"""The import layering of src/dockyard (docs/architecture.md), checked on the source.

Every module belongs to one layer; a layer may import itself and the layers it
lists in :data:`MAY_IMPORT`, nothing else. Imports inside functions count too,
and the module graph as a whole must have no cycle: an import moved into a
function to dodge a cycle is reported as the cycle it is. (A function-level
import that closes no cycle, such as a driver or controller loaded only when
configured, is fine.)
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "dockyard"

#: Layer of each module, by longest matching prefix. ``root`` is the shared
#: vocabulary at the package root (errors, value types, digests, names, the
#: metadata-index interface): it imports nothing above itself.
LAYER_OF = {
    "dockyard": "root",
    "dockyard.__main__": "cli",
    "dockyard.cli": "cli",
    "dockyard.cli_index": "cli",
    "dockyard.cli_maintenance": "cli",
    "dockyard.cli_support": "cli",
    "dockyard.server": "server",
    "dockyard.assembly": "server",
    "dockyard.listeners": "server",
    "dockyard.balance": "server",
    "dockyard.uploadsecret": "server",
    "dockyard.workers": "server",
    "dockyard.heap": "server",
    "dockyard.background": "server",
    "dockyard.tls": "server",
    "dockyard.logs": "server",
    "dockyard.connections": "server",
    "dockyard.notifying": "server",
    "dockyard.notifications": "notifications",
    "dockyard.debugserver": "server",
    "dockyard.metrics": "metrics",
    "dockyard.health": "health",
    "dockyard.tracing": "tracing",
    "dockyard.api": "api",
    "dockyard.auth": "auth",
    "dockyard.maintenance": "maintenance",
    "dockyard.registry": "registry",
    "dockyard.index": "index",
    "dockyard.proxy": "proxy",
    "dockyard.storage": "storage",
    "dockyard.storage.drivers": "drivers",
    "dockyard.cache": "cache",
    "dockyard.manifest": "manifest",
    "dockyard.config": "config",
    "dockyard.ui": "ui",
    "dockyard.policy": "policy",
    "dockyard.digest": "root",
    "dockyard.durations": "root",
    "dockyard.names": "root",
    "dockyard.errors": "root",
    "dockyard.types": "root",
    "dockyard.metadata": "root",
    "dockyard.hashstate": "root",
    "dockyard.serial": "root",
    "dockyard.nowait": "root",
    "dockyard.filewrite": "root",
    "dockyard.clientaddr": "root",
}

#: Top to bottom: what each layer may import besides itself. Request path:
#: api -> registry -> storage -> drivers; caches wrap stores, so registry (which
#: composes them) imports cache and storage does not.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "cli": frozenset({"server", "api", "notifications", "auth", "maintenance", "proxy",
                      "registry", "index", "storage", "drivers", "cache", "manifest", "config",
                      "policy", "root"}),
    "server": frozenset({"api", "notifications", "auth", "maintenance", "proxy", "registry",
                         "index", "storage", "drivers", "cache", "manifest", "config", "policy",
                         "root", "metrics", "health", "tracing"}),
    # Operations (wired in by the server when configured): metrics wrap the driver,
    # the cache and the app; health checks probe the driver and answer in the envelope.
    "metrics": frozenset({"drivers", "cache", "root"}),
    "health": frozenset({"api", "drivers", "root"}),
    "tracing": frozenset({"drivers", "root"}),
    "api": frozenset({"auth", "notifications", "registry", "manifest", "ui", "root"}),
    # Webhook events: a wrapper around registry's Repository (api wraps per request).
    "notifications": frozenset({"registry", "index", "manifest", "root"}),
    "maintenance": frozenset({"registry", "index", "storage", "drivers", "cache", "manifest",
                              "policy", "root"}),
    # The pull-through cache is another Namespace: it wraps the registry layer.
    "proxy": frozenset({"registry", "index", "storage", "drivers", "cache", "manifest", "root"}),
    "registry": frozenset({"index", "storage", "drivers", "cache", "manifest", "policy",
                           "root"}),
    # The metadata index: below the services that update it, above the layout it reads.
    "index": frozenset({"storage", "drivers", "manifest", "root"}),
    "storage": frozenset({"drivers", "manifest", "root"}),
    "drivers": frozenset({"root"}),
    "cache": frozenset({"manifest", "root"}),
    "manifest": frozenset({"root"}),
    "auth": frozenset({"root"}),
    # The web UI's routes and assets; api wires them in.
    "ui": frozenset({"root"}),
    "config": frozenset({"root"}),
    # Tag policies (immutable tags, retention rules): pure decisions, no I/O.
    "policy": frozenset({"root"}),
    "root": frozenset(),
}

#: Edges known to break the rules, each with the work that removes it. An entry
#: that no longer matches an import fails the test: delete it with the fix.
PENDING: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported dockyard module, line) for every import in ``module``, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            # ``from dockyard.storage import paths`` imports the submodule.
            targets = [
                f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "dockyard" or target.startswith("dockyard."):
                yield target, node.lineno


def _layer(module: str) -> str:
    prefix = module
    while prefix not in LAYER_OF:
        if "." not in prefix:
            raise KeyError(module)
        prefix = prefix.rpartition(".")[0]
    return LAYER_OF[prefix]


EDGES = {(m, t): line for m in MODULES for t, line in _imports(m) if t != m}


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if not any(
        m == p or m.startswith(p + ".") for p in LAYER_OF if p != "dockyard"
    ) and m != "dockyard"]
    assert not unplaced, f"add these modules to LAYER_OF: {unplaced}"


def test_layers_form_a_hierarchy() -> None:
    """The rule table itself has no cycle, so the layers can be drawn top to bottom."""
    assert set(MAY_IMPORT) == set(LAYER_OF.values())
    for layer, below in MAY_IMPORT.items():
        assert below <= set(MAY_IMPORT), layer
    graphlib.TopologicalSorter(MAY_IMPORT).prepare()  # raises CycleError


def test_imports_follow_the_layers() -> None:
    wrong = [
        f"{MODULES[m].relative_to(SRC)}:{line}: {m} ({_layer(m)}) imports {t} ({_layer(t)})"
        for (m, t), line in sorted(EDGES.items())
        if _layer(t) != _layer(m)
        and _layer(t) not in MAY_IMPORT[_layer(m)]
        and (m, t) not in PENDING
    ]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_module_graph_has_no_cycle() -> None:
    """No cycle between modules, counting imports inside functions."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, t in EDGES:
        if (m, t) not in PENDING and t in MODULES:
            graph[m].add(t)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle (an import inside a function counts): {exc.args[1]}")


def test_pending_exceptions_are_still_needed() -> None:
    stale = [f"{m} -> {t} ({why})" for (m, t), why in PENDING.items() if (m, t) not in EDGES]
    assert not stale, "fixed: remove from PENDING in tests/unit/test_layers.py:\n" + "\n".join(
        stale
    )
