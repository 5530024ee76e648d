"""What a collection did: the summary ``dockyard garbage-collect`` prints."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.maintenance.purge import format_size

__all__ = ["GCSummary", "plural"]


@dataclass(slots=True)
class GCSummary:
    """What one collection did (or, in a dry run, would have done)."""

    repositories: int = 0
    manifests_marked: int = 0
    """Manifests kept (counted once per repository)."""
    manifests_deleted: int = 0
    """Untagged manifests deleted (``delete_untagged``)."""
    blobs_marked: int = 0
    """Distinct digests in the mark set."""
    blobs_examined: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    layer_links_deleted: int = 0
    errors: int = 0
    swept: bool = False
    """Whether the blob sweep ran (it does not after an error while marking)."""
    dry_run: bool = False
    delete_untagged: bool = False
    online: bool = False
    """Collected while the registry served (:mod:`~.gc_online`)."""

    def __str__(self) -> str:
        would = "would delete" if self.dry_run else "deleted"
        parts = [
            f"{self.repositories} repositor{'y' if self.repositories == 1 else 'ies'}",
            f"{self.manifests_marked} manifest{plural(self.manifests_marked)} marked",
        ]
        if self.delete_untagged:
            deleted = self.manifests_deleted
            parts.append(f"{would} {deleted} untagged manifest{plural(deleted)}")
        parts.append(f"{self.blobs_marked} blob{plural(self.blobs_marked)} marked")
        if self.swept:
            parts.append(
                f"{self.blobs_examined} examined, {would} {self.blobs_deleted} "
                f"({format_size(self.bytes_freed)}) and {self.layer_links_deleted} "
                f"layer link{plural(self.layer_links_deleted)}"
            )
        else:
            parts.append("blobs not swept (errors while marking)")
        parts.append(f"{self.errors} error{plural(self.errors)}")
        kind = "online garbage collection" if self.online else "garbage collection"
        return f"{kind}{' (dry run)' if self.dry_run else ''}: " + ", ".join(parts)


def plural(n: int) -> str:
    """The plural ending for ``n`` things."""
    return "" if n == 1 else "s"
