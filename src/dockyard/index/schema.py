"""Versioned migrations of the index schema, for SQLite and PostgreSQL alike.

Each migration is applied once, in order, in one transaction, and recorded in
``schema_version``; they run at start and by ``dockyard index migrate``. A new
schema is a new entry at the end, never an edit of an applied one, so an index
is upgraded in place and never needs a rebuild by hand.

Names, tags and digests sort bytewise (``COLLATE "C"`` on PostgreSQL, SQLite's
default), which is the order the layout's listings are served in.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["MIGRATIONS", "Dialect", "migration_sql"]

Dialect = Literal["sqlite", "postgres"]

# Version 1: the tables. {text}, {big} and {real} become the dialect's types.
_V1 = """
CREATE TABLE repositories (
    name {text} PRIMARY KEY,
    sort_key {text} NOT NULL UNIQUE,
    has_tags INTEGER NOT NULL DEFAULT 0,
    pushed_at {real}
);
CREATE TABLE blobs (
    digest {text} PRIMARY KEY,
    size {big} NOT NULL
);
CREATE TABLE layers (
    repository {text} NOT NULL,
    digest {text} NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX layers_digest ON layers (digest);
CREATE TABLE manifests (
    repository {text} NOT NULL,
    digest {text} NOT NULL,
    media_type {text} NOT NULL,
    size {big} NOT NULL,
    subject {text},
    artifact_type {text},
    annotations {text},
    pushed_at {real},
    last_pull {real},
    PRIMARY KEY (repository, digest)
);
CREATE INDEX manifests_digest ON manifests (digest);
CREATE INDEX manifests_subject ON manifests (repository, subject);
CREATE TABLE manifest_refs (
    repository {text} NOT NULL,
    manifest {text} NOT NULL,
    digest {text} NOT NULL,
    kind {text} NOT NULL,
    PRIMARY KEY (repository, manifest, kind, digest)
);
CREATE INDEX manifest_refs_digest ON manifest_refs (digest);
CREATE TABLE tags (
    repository {text} NOT NULL,
    tag {text} NOT NULL,
    digest {text} NOT NULL,
    pushed_at {real},
    PRIMARY KEY (repository, tag)
);
CREATE INDEX tags_digest ON tags (repository, digest);
"""

# Version 2: a token that changes with every tag write, so a process may keep a large
# repository's tag list in memory and know, with one row read, whether it still holds.
_V2 = """
ALTER TABLE repositories ADD COLUMN tag_version {big} NOT NULL DEFAULT 0
"""

# Version 3: each tag row carries the repository's tag_version its write made, so a
# process whose kept list is a few tag pushes behind reads only the tags written since.
_V3 = """
ALTER TABLE tags ADD COLUMN tag_version {big} NOT NULL DEFAULT 0;
CREATE INDEX tags_version ON tags (repository, tag_version)
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
"""Migration ``i`` brings the schema to version ``i + 1``."""

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"text": "TEXT", "big": "INTEGER", "real": "REAL"},
    "postgres": {"text": 'TEXT COLLATE "C"', "big": "BIGINT", "real": "DOUBLE PRECISION"},
}


def migration_sql(version: int, dialect: Dialect) -> list[str]:
    """The statements of migration ``version`` (1-based) for ``dialect``."""
    text = MIGRATIONS[version - 1].format(**_TYPES[dialect])
    return [s.strip() for s in text.split(";") if s.strip()]
