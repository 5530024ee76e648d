"""The storage layout of distribution 2.x, one pure function per location.

Every path is absolute within the driver and sits under ``/docker/registry/v2``::

    /docker/registry/v2/
      blobs/<alg>/<hex[:2]>/<hex>/data
      repositories/<name>/
        _uploads/<uuid>/data
        _uploads/<uuid>/startedat
        _uploads/<uuid>/hashstates/<alg>/<offset>
        _layers/<alg>/<hex>/link
        _manifests/revisions/<alg>/<hex>/link
        _manifests/revisions/<alg>/<hex>/signatures/<alg>/<hex>/link
        _manifests/revisions/<alg>/<hex>/referrers/<alg>/<hex>/link   (dockyard)
        _manifests/tags/<tag>/current/link
        _manifests/tags/<tag>/index/<alg>/<hex>/link
        _manifests/referrers-indexed                                  (dockyard)

Callers validate names, tags, digests and upload ids first; these functions only
assemble strings (``Digest`` values are valid by construction).
"""

from __future__ import annotations

from dockyard.digest import Digest

__all__ = [
    "REPOSITORIES_ROOT",
    "ROOT",
    "blob_data_path",
    "blob_dir_path",
    "blobs_root",
    "layer_link_path",
    "layers_root",
    "link_dir",
    "link_in",
    "manifest_referrer_link_path",
    "manifest_referrers_path",
    "manifest_revision_link_path",
    "manifest_revision_path",
    "manifest_revisions_root",
    "manifest_signature_link_path",
    "manifest_signatures_path",
    "referrers_indexed_path",
    "repository_path",
    "tag_current_link_path",
    "tag_index_entry_link_path",
    "tag_index_path",
    "tag_path",
    "tags_root",
    "upload_data_path",
    "upload_hashstate_path",
    "upload_hashstates_path",
    "upload_path",
    "upload_startedat_in",
    "upload_startedat_path",
    "uploads_root",
]

ROOT = "/docker/registry/v2"
REPOSITORIES_ROOT = f"{ROOT}/repositories"


def _digest_components(d: Digest) -> str:
    return f"{d.algorithm}/{d.hex}"


def link_in(directory: str) -> str:
    """The link file of an entry directory (one listed under ``_layers``, ``referrers`` ...)."""
    return f"{directory}/link"


def link_dir(link: str) -> str:
    """The entry directory of a link file: what removing the link deletes."""
    return link.rsplit("/", 1)[0]


def blobs_root() -> str:
    return f"{ROOT}/blobs"


def blob_dir_path(d: Digest) -> str:
    """``blobs/<alg>/<hh>/<hex>``: the directory holding a blob's data."""
    return f"{ROOT}/blobs/{d.algorithm}/{d.hex[:2]}/{d.hex}"


def blob_data_path(d: Digest) -> str:
    return f"{blob_dir_path(d)}/data"


def repository_path(name: str) -> str:
    return f"{REPOSITORIES_ROOT}/{name}"


def layers_root(name: str) -> str:
    return f"{repository_path(name)}/_layers"


def layer_link_path(name: str, d: Digest) -> str:
    return link_in(f"{layers_root(name)}/{_digest_components(d)}")


def manifest_revisions_root(name: str) -> str:
    return f"{repository_path(name)}/_manifests/revisions"


def manifest_revision_path(name: str, d: Digest) -> str:
    return f"{manifest_revisions_root(name)}/{_digest_components(d)}"


def manifest_revision_link_path(name: str, d: Digest) -> str:
    return link_in(manifest_revision_path(name, d))


def manifest_signatures_path(name: str, revision: Digest) -> str:
    return f"{manifest_revision_path(name, revision)}/signatures"


def manifest_signature_link_path(name: str, revision: Digest, signature: Digest) -> str:
    return link_in(f"{manifest_signatures_path(name, revision)}/{_digest_components(signature)}")


def manifest_referrers_path(name: str, subject: Digest) -> str:
    return f"{manifest_revision_path(name, subject)}/referrers"


def manifest_referrer_link_path(name: str, subject: Digest, referrer: Digest) -> str:
    return link_in(f"{manifest_referrers_path(name, subject)}/{_digest_components(referrer)}")


def referrers_indexed_path(name: str) -> str:
    """Marks a repository whose referrer links cover manifests written by other registries."""
    return f"{repository_path(name)}/_manifests/referrers-indexed"


def tags_root(name: str) -> str:
    return f"{repository_path(name)}/_manifests/tags"


def tag_path(name: str, tag: str) -> str:
    return f"{tags_root(name)}/{tag}"


def tag_current_link_path(name: str, tag: str) -> str:
    return link_in(f"{tag_path(name, tag)}/current")


def tag_index_path(name: str, tag: str) -> str:
    return f"{tag_path(name, tag)}/index"


def tag_index_entry_link_path(name: str, tag: str, d: Digest) -> str:
    return link_in(f"{tag_index_path(name, tag)}/{_digest_components(d)}")


def uploads_root(name: str) -> str:
    return f"{repository_path(name)}/_uploads"


def upload_path(name: str, upload_id: str) -> str:
    return f"{uploads_root(name)}/{upload_id}"


def upload_data_path(name: str, upload_id: str) -> str:
    return f"{upload_path(name, upload_id)}/data"


def upload_startedat_in(upload: str) -> str:
    """The ``startedat`` file of an upload directory found by listing ``_uploads``."""
    return f"{upload}/startedat"


def upload_startedat_path(name: str, upload_id: str) -> str:
    return upload_startedat_in(upload_path(name, upload_id))


def upload_hashstates_path(name: str, upload_id: str, algorithm: str) -> str:
    return f"{upload_path(name, upload_id)}/hashstates/{algorithm}"


def upload_hashstate_path(name: str, upload_id: str, algorithm: str, offset: int) -> str:
    return f"{upload_hashstates_path(name, upload_id, algorithm)}/{offset}"
