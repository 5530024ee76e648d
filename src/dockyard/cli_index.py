"""``dockyard index rebuild|verify|migrate``, ``delete-repository`` and ``usage``.

Offline commands on the index ``storage.index`` configures; safe beside a
running server (SQLite in WAL mode, PostgreSQL transactions). Progress goes to
stderr, the summary (or the usage table) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dockyard.config import Config, ConfigError
from dockyard.errors import NameInvalid, NameUnknown, ReadOnly, Unsupported
from dockyard.index import SqlIndex
from dockyard.storage.drivers.base import CheckedDriver
from dockyard.storage.drivers.factory import DriverConfigError, create_driver

__all__ = ["add_parsers", "run_command"]

T = TypeVar("T")

INDEX_EPILOG = """\
rebuild  replace the index with what storage holds (push and pull times the
         index alone knows are kept); repositories gone from storage are dropped.
verify   compare the index with storage, writing nothing; exit status 1 on drift.
migrate  apply pending schema migrations (the server also does at start).
"""


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the index commands to ``dockyard``'s parser."""
    index = commands.add_parser(
        "index", help="rebuild, verify or migrate the metadata index",
        description="Maintain the metadata index of CONFIG (storage.index).",
        epilog=INDEX_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument("action", choices=("rebuild", "verify", "migrate"))
    index.add_argument("config", nargs="?", metavar="CONFIG")
    delete = commands.add_parser(
        "delete-repository", help="delete a whole repository (tags, manifests, links)",
        description="Delete repository NAME of CONFIG's storage: its tags, manifests, "
        "layer links and uploads. Blobs stay for garbage-collect (other repositories may "
        "use them). Refused unless storage.delete.enabled is true.",
    )
    delete.add_argument("config", metavar="CONFIG")
    delete.add_argument("name", metavar="NAME")
    usage = commands.add_parser(
        "usage", help="print each repository's tags, manifests and sizes",
        description="A table of every repository of CONFIG, from the metadata index: "
        "tags, manifests, blobs, size (each blob once) and exclusive size (what "
        "deleting the repository would free).",
    )
    usage.add_argument("config", nargs="?", metavar="CONFIG")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(message: str, code: int = 2) -> int:
    print(f"dockyard: {message}", file=sys.stderr)
    return code


async def _with(index: SqlIndex | None, driver: CheckedDriver, work: Awaitable[T]) -> T:
    try:
        return await work
    finally:
        if index is not None:
            await index.aclose()
        await driver.aclose()


def run_command(args: argparse.Namespace, config: Config) -> int:
    """Run one of the commands :func:`add_parsers` added; the exit status."""
    from dockyard.server import build_index

    if config.storage.driver == "inmemory":
        return _fail("the inmemory driver lives inside the server process: "
                     "nothing to work on from here")
    try:
        driver = create_driver(config.storage.driver, config.storage.parameters)
        index = build_index(config)
    except (ConfigError, DriverConfigError) as exc:
        return _fail(f"configuration error: {exc}")
    commands: dict[str, Callable[[], Awaitable[int]]] = {
        "index": lambda: _index(args.action, index, driver),
        "delete-repository": lambda: _delete(args.name, config, index, driver),
        "usage": lambda: _usage(index),
    }
    try:
        return asyncio.run(_with(index, driver, commands[args.command]()))
    except (NameUnknown, NameInvalid, Unsupported, ReadOnly) as exc:
        return _fail(f"{args.command}: {exc}", 1)


async def _index(action: str, index: SqlIndex | None, driver: CheckedDriver) -> int:
    from dockyard.index.maintain import rebuild, verify

    if index is None:
        return _fail("storage.index.driver is none: there is no index to maintain")
    version = await index.migrate()
    if action == "migrate":
        print(f"index {index.where}: schema version {version}", flush=True)
        return 0
    if action == "rebuild":
        _progress(f"rebuilding the index ({index.where}) from storage")
        print(await rebuild(index, driver, _progress), flush=True)
        return 0
    _progress(f"verifying the index ({index.where}) against storage")
    summary = await verify(index, driver, _progress)
    print(summary, flush=True)
    return 0 if summary.ok else 1


async def _delete(
    name: str, config: Config, index: SqlIndex | None, driver: CheckedDriver
) -> int:
    from dockyard.registry.namespace import Namespace, RegistryOptions

    if index is not None:
        await index.migrate()
    options = RegistryOptions(
        delete_enabled=config.storage.delete.enabled,
        read_only=config.storage.maintenance.read_only.enabled,
    )
    await Namespace(driver, options, index=index).repository(name).delete()
    print(f"deleted repository {name} (its blobs stay for garbage-collect)", flush=True)
    return 0


def _size(size: int) -> str:
    value, units = float(size), ["B", "KiB", "MiB", "GiB", "TiB"]
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {units[unit]}"


async def _usage(index: SqlIndex | None) -> int:
    if index is None:
        return _fail("usage needs the metadata index (storage.index.driver is none)")
    await index.migrate()
    rows = [("REPOSITORY", "TAGS", "MANIFESTS", "BLOBS", "SIZE", "EXCLUSIVE")]
    exclusive = 0
    last = ""
    while True:
        page, more = await index.usages(500, last)
        for u in page:
            rows.append((u.name, str(u.tags), str(u.manifests), str(u.blobs),
                         _size(u.size), _size(u.exclusive_size)))
            exclusive += u.exclusive_size
        if not more or not page:
            break
        last = page[-1].name
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    print(f"{len(rows) - 1} repositories; {_size(exclusive)} held by one repository alone",
          flush=True)
    return 0
