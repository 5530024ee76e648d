"""The ``dockyard`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, TypeVar

from dockyard import __version__
from dockyard.cli_support import _closing, _open_storage, _progress, _where
from dockyard.config import Config, ConfigError, load_config, refuse_unknown_keys
from dockyard.durations import parse_duration
from dockyard.storage.drivers.factory import DriverConfigError

if TYPE_CHECKING:
    from dockyard.cache.redis import RedisCache

T = TypeVar("T")

__all__ = ["main"]

DESCRIPTION = """\
dockyard: a container image registry (OCI Distribution Spec v1.1, Docker Registry
HTTP API V2), storage-compatible with the CNCF distribution registry.

Run `dockyard serve` to start on :5000 with filesystem storage in ./registry-data,
or `dockyard serve CONFIG` with the config.yml docker-registry accepts.
"""

SERVE_EPILOG = """\
configuration:
  CONFIG is distribution's config.yml (version 0.1): log; storage (filesystem,
  inmemory, s3, azure, gcs, rados; delete, redirect, cache.blobdescriptor inmemory|redis,
  maintenance.uploadpurging, maintenance.readonly; index: the metadata index,
  driver sqlite (default for filesystem) | postgres (dsn, poolsize) | none, path,
  rebuildonstart); http (addr, secret, host, prefix,
  relativeurls, headers, tls with clientcas/minimumtls/ciphersuites, workers,
  limits: headertimeout/bodytimeout (either way) 60s, minbodyrate 1024 B/s,
  maxheaderbytes 65536, maxconnections 1000 per worker, dockyard's guards
  against slow and hostile clients); auth
  (htpasswd, token, silly); redis; validation; proxy (pull-through cache: remoteurl,
  username, password, ttl as in distribution, or upstreams: a list of prefix,
  remoteurl, namespace, username, password, ttl caching each upstream under its
  prefix beside hosted repositories); ui (dockyard's web UI at <http.prefix>/ui/,
  where / redirects: on unless ui.enabled is false). Any key can be overridden from the
  environment as REGISTRY_<SECTION>_<KEY>, e.g.
  REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/srv/registry or
  REGISTRY_HTTP_ADDR=127.0.0.1:5001. Keys dockyard does not support yet
  (notifications) are named in a warning at start, and so is an
  unknown (misspelt) key, with the nearest known one; --strict refuses to start
  with an unknown key.

  Without CONFIG: filesystem storage in ./registry-data, port 5000, deletes off;
  unless http.secret is set, a generated one is kept in registry-data/http.secret.

workers:
  --workers N (or http.workers) runs N processes on one port; by default one
  per CPU (1 with the inmemory driver). Every worker continues any upload;
  several instances need the same http.secret.
"""


PURGE_EPILOG = """\
The same purge the server runs by itself (storage.maintenance.uploadpurging:
first a random 5-60 s after start, then every interval; not at all with
enabled: false or in read-only mode). An upload is abandoned when its startedat
is older than AGE, or, without a readable startedat, when nothing in its
directory changed for AGE. Safe to run while the registry serves. Exit status
1 if some directory could not be read or deleted.
"""


GC_EPILOG = """\
Run it offline: stop the registry, or put it in storage.maintenance.readonly
mode, first (as docker-registry garbage-collect requires). A blob pushed while
it runs is referenced by no manifest yet and would be deleted. With the metadata
index and storage.maintenance.garbagecollect.enabled, --online collects while the
registry serves (see README, Online garbage collection).

Marks every manifest of every repository (revisions, and manifests tags name
that distribution 2.1.0 linked under _layers) with its config, layers, children
and schema1 signatures; then deletes every blob not marked, and the _layers links
that pointed at them. With --delete-untagged, a manifest no tag reaches (directly
or as the child of a tagged list or index) and that is not a referrer of a kept
manifest is unlinked instead of marked. Nothing is deleted from blobs/ if any
repository could not be read completely. Exit status 1 after any error.
"""

RETENTION_EPILOG = """\
Applies the retention section of CONFIG once (see README, Retention): for every
repository the first policy matches, each tag is kept by the first keeptags entry
whose patterns match it if any of its rules keeps it (patterns alone keep what they
match; a policy without keeptags keeps every tag); immutable tags are always kept.
Manifests no kept tag reaches (as the tag's manifest, a child of a kept index, or
a referrer of a kept manifest) and pushed more than retention.delay ago go too
(unless deleteuntagged: false). Every deletion is printed with the rule that
decided it; then run garbage-collect to free the blobs. Safe while the registry
serves: a tag that moved, or a manifest tagged again, since the plan is kept.
Exit status 1 after any error.
"""

VERIFY_EPILOG = """\
Safe while the registry serves: it only reads, and --repair only moves blobs
whose bytes are provably wrong. Each blob is streamed through its hash (the
whole content store is read once: plan for the time and, on object stores, the
requests and egress). With --repair a mismatched blob's data is moved to
/docker/registry/quarantine/<alg>/<hex>-<UTC time> in the same storage (outside
the v2 layout, so neither dockyard, docker-registry nor garbage-collect sees
it); its digest becomes unknown and the next push of the true bytes stores them
again. Flush a Redis blob-descriptor cache afterwards.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockyard", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dockyard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the registry", description="Run the registry.",
        epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("config", nargs="?", metavar="CONFIG",
                       help="path to config.yml (default: the embedded default)")
    serve.add_argument("--workers", type=_positive, metavar="N",
                       help="worker processes sharing the port (overrides http.workers)")
    serve.add_argument("--strict", action="store_true", help=STRICT_HELP)
    check = commands.add_parser(
        "check-config", help="validate a config.yml and print its warnings",
        description="Validate CONFIG (with REGISTRY_* overrides) and exit: status 0 if "
        "serve would start, 2 if not.",
    )
    check.add_argument("config", nargs="?", metavar="CONFIG")
    check.add_argument("--strict", action="store_true", help=STRICT_HELP)
    purge = commands.add_parser(
        "purge-uploads", help="delete abandoned uploads once",
        description="Delete uploads started more than AGE ago from the storage of CONFIG, "
        "once, with progress on stderr and a summary on stdout.",
        epilog=PURGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    purge.add_argument("config", nargs="?", metavar="CONFIG")
    purge.add_argument("--age", metavar="DURATION", type=_duration,
                       help="Go duration such as 168h or 30m "
                       "(default: storage.maintenance.uploadpurging.age, 168h)")
    purge.add_argument("--dry-run", action="store_true",
                       help="report what would be deleted, delete nothing")
    gc = commands.add_parser(
        "garbage-collect", help="delete blobs no manifest references (offline)",
        description="Delete the blobs of CONFIG's storage that no manifest references, "
        "with progress on stderr and a summary on stdout.",
        epilog=GC_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gc.add_argument("config", nargs="?", metavar="CONFIG")
    gc.add_argument("-d", "--dry-run", action="store_true",
                    help="report what would be deleted, delete nothing")
    gc.add_argument("-m", "--delete-untagged", action="store_true",
                    help="also delete manifests no tag reaches, and then their blobs")
    gc.add_argument("--online", action="store_true",
                    help="collect while the registry serves (needs the metadata index and "
                    "storage.maintenance.garbagecollect.enabled; see README)")
    gc.add_argument("--grace", metavar="DURATION", type=_duration,
                    help="with --online: keep blobs and manifests younger than this "
                    "(default: storage.maintenance.garbagecollect.graceperiod, 1h)")
    retention = commands.add_parser(
        "retention", help="delete tags and manifests by the retention policies",
        description="Apply the retention policies of CONFIG once, printing what goes and "
        "which rule decided it (stderr), then a summary (stdout).",
        epilog=RETENTION_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    retention.add_argument("config", nargs="?", metavar="CONFIG")
    retention.add_argument("-d", "--dry-run", action="store_true",
                           help="print what would go, delete nothing (as retention.dryrun)")
    verify = commands.add_parser(
        "verify-blobs", help="re-hash every stored blob; report (and quarantine) mismatches",
        description="Re-hash every blob of CONFIG's storage and report those whose bytes do "
        "not match their digest, with progress on stderr and a summary on stdout. Only "
        "reports unless --repair is given. Exit status 1 if any blob mismatched or could "
        "not be read.",
        epilog=VERIFY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("config", nargs="?", metavar="CONFIG")
    verify.add_argument("--repair", action="store_true",
                        help="move mismatched blobs to the quarantine, so an honest push "
                        "stores them again")
    index = commands.add_parser(
        "index-referrers", help="derive referrer links for manifests other registries wrote",
        description="Scan every repository of CONFIG's storage for manifests with a subject "
        "and link them for the referrers API. dockyard does this by itself the first time a "
        "repository's referrers are listed; run this after another registry (such as "
        "docker-registry) has written to the same storage, or ahead of time.",
    )
    index.add_argument("config", nargs="?", metavar="CONFIG")
    from dockyard.cli_index import add_parsers

    add_parsers(commands)
    issuer = commands.add_parser(
        "token-server", help="run the built-in token issuer for auth.token",
        description="Issue Docker registry bearer tokens: users from an htpasswd file, "
        "ACL rules with a default deny. See README (Token authentication) for a "
        "working pair of registry and issuer configs.",
    )
    issuer.add_argument("config", metavar="ISSUER_CONFIG",
                        help="the issuer's YAML file (issuer, service, addr, certificate, "
                        "key, htpasswd, anonymous, groups, acl)")
    return parser


STRICT_HELP = ("refuse a configuration with unknown keys (misspellings: warned about "
               "either way, with the nearest known key)")


def _positive(text: str) -> int:
    """``--workers``: an integer of at least 1 (argparse reports it with the usage)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _duration(text: str) -> float:
    """``--age``: seconds in a Go duration such as 168h or 30m."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _token_server(path: str) -> int:
    """``dockyard token-server``: serve tokens until interrupted."""
    from dockyard.auth.issuer import load_issuer_config, run_token_issuer
    from dockyard.logs import setup_logging

    try:
        cfg = load_issuer_config(path)
    except (ValueError, OSError) as exc:
        print(f"dockyard: token issuer configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging()
    logging.getLogger("dockyard").info(
        "token issuer %r for service %r on http://%s; signing certificate %s",
        cfg.issuer, cfg.service, cfg.addr, cfg.certificate,
    )
    try:
        run_token_issuer(cfg)
    except ValueError as exc:  # htpasswd, key or certificate unusable
        print(f"dockyard: token issuer configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "token-server":
        return _token_server(args.config)
    try:
        config, warnings = load_config(args.config)
    except ConfigError as exc:
        print(f"dockyard: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"dockyard: cannot read configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        from dockyard.server import check_config, unsupported_features

        for warning in [*warnings, *unsupported_features(config)]:
            print(f"warning: {warning}")
        try:
            if args.strict:
                refuse_unknown_keys(warnings)
            check_config(config)
        except (ConfigError, DriverConfigError) as exc:
            print(f"dockyard: configuration error: {exc}", file=sys.stderr)
            return 2
        print("configuration OK")
        return 0
    if args.command == "purge-uploads":
        return _purge_uploads(args, config)
    if args.command == "index-referrers":
        return _index_referrers(config)
    if args.command == "garbage-collect":
        return _garbage_collect(args, config)
    if args.command == "verify-blobs":
        return _verify_blobs(args, config)
    if args.command == "retention":
        from dockyard.cli_maintenance import retention

        return retention(args, config)
    if args.command in ("index", "delete-repository", "usage"):
        from dockyard.cli_index import run_command

        return run_command(args, config)
    from dockyard.server import serve

    try:
        return serve(config, warnings, args.workers, strict=args.strict)
    except (ConfigError, DriverConfigError) as exc:
        print(f"dockyard: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"dockyard: cannot start: {exc}", file=sys.stderr)
        return 1


def _purge_uploads(args: argparse.Namespace, config: Config) -> int:
    """``dockyard purge-uploads``: one purge, progress on stderr, summary on stdout."""
    import asyncio

    from dockyard.maintenance.purge import format_duration, purge_uploads

    age = config.storage.maintenance.upload_purging.age if args.age is None else args.age
    driver = _open_storage(config)
    if driver is None:
        return 2
    dry = " (dry run: nothing is deleted)" if args.dry_run else ""
    _progress(f"purging uploads older than {format_duration(age)} from "
              f"{_where(config, 'purge')}{dry}")
    summary = asyncio.run(_closing(driver, purge_uploads(
        driver, older_than=age, dry_run=args.dry_run, progress=_progress
    )))
    print(summary, flush=True)
    return 1 if summary.errors else 0


def _index_referrers(config: Config) -> int:
    """``dockyard index-referrers``: progress per repository on stderr, a summary on stdout."""
    import asyncio

    from dockyard.registry.namespace import Namespace, RegistryOptions

    driver = _open_storage(config)
    if driver is None:
        return 2
    namespace = Namespace(driver, RegistryOptions())

    async def run() -> tuple[int, int]:
        repositories = linked = 0
        last = ""
        while True:
            page = await namespace.catalog(100, last)
            for name in page.entries:
                count = await namespace.repository(name).index_referrers()
                repositories += 1
                linked += count
                _progress(f"{name}: {count} referrer(s) linked")
            if not page.more:
                return repositories, linked
            last = page.entries[-1]

    repositories, linked = asyncio.run(_closing(driver, run()))
    print(f"indexed {repositories} repositories: {linked} referrer links", flush=True)
    return 0


def _garbage_collect(args: argparse.Namespace, config: Config) -> int:
    """``dockyard garbage-collect``: progress on stderr, a summary on stdout."""
    import asyncio

    from dockyard.maintenance.gc import GCSummary, garbage_collect
    from dockyard.server import build_index, build_redis_cache

    if args.online:
        from dockyard.cli_maintenance import garbage_collect_online

        return garbage_collect_online(args, config)
    storage = config.storage
    driver = _open_storage(config)
    if driver is None:
        return 2
    dry = " (dry run: nothing is deleted)" if args.dry_run else ""
    _progress(f"garbage collection of {_where(config, 'collect')}{dry}")
    if not storage.maintenance.read_only.enabled and not args.dry_run:
        _progress("the registry must not be serving writes meanwhile: stop it, or set "
                  "storage.maintenance.readonly.enabled (a blob pushed now would be deleted)")

    # Shared by every instance and kept across restarts: cleared of what goes. The
    # bare cache, not the server's fall-through wrapper: a failure here is an error.
    cache: RedisCache | None = None
    if storage.cache.blob_descriptor == "redis":
        try:
            cache = build_redis_cache(config)
        except ConfigError as exc:
            print(f"dockyard: configuration error: {exc}", file=sys.stderr)
            return 2

    try:
        index = None if args.dry_run else build_index(config)
    except ConfigError as exc:
        print(f"dockyard: configuration error: {exc}", file=sys.stderr)
        return 2

    async def run() -> GCSummary:
        try:
            if index is not None:  # kept in step with every delete (issue 12)
                await index.migrate()
            return await garbage_collect(
                driver, dry_run=args.dry_run, delete_untagged=args.delete_untagged,
                cache=cache, index=index, progress=_progress,
            )
        finally:
            if cache is not None:
                await cache.client.aclose()
            if index is not None:
                await index.aclose()

    summary = asyncio.run(_closing(driver, run()))
    print(summary, flush=True)
    return 1 if summary.errors else 0


def _verify_blobs(args: argparse.Namespace, config: Config) -> int:
    """``dockyard verify-blobs``: progress on stderr, a summary on stdout."""
    import asyncio

    from dockyard.maintenance.verify import verify_blobs

    driver = _open_storage(config)
    if driver is None:
        return 2
    mode = "repairing" if args.repair else "report only: nothing is moved"
    _progress(f"verifying the blobs of {_where(config, 'verify')} ({mode})")
    summary = asyncio.run(
        _closing(driver, verify_blobs(driver, repair=args.repair, progress=_progress))
    )
    print(summary, flush=True)
    return 0 if summary.ok else 1
