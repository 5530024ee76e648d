"""``storage.rados``: the parameters of distribution's rados driver, read and checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.storage.drivers.params import ParameterReader

__all__ = ["DEFAULT_CHUNK_SIZE", "RadosParameters"]

DEFAULT_CHUNK_SIZE = 4 << 20
MIN_CHUNK_SIZE = 64 << 10
# Ceph refuses objects above osd_max_object_size (128 MiB by default).
MAX_CHUNK_SIZE = 128 << 20
KNOWN = frozenset({"poolname", "username", "chunksize", "conffile", "namespace"})
"""Every key of ``storage.rados``: distribution's three, and dockyard's ``conffile``
and ``namespace``."""


class RadosParameters:
    """``storage.rados`` validated; raises ``DriverConfigError`` naming the bad key.

    ``poolname`` (required); ``username`` (the Ceph user without ``client.``, as
    distribution: librados' default, ``admin``, when empty); ``chunksize`` (bytes per
    RADOS object of a file's data, default 4 MiB); ``conffile`` (the ceph.conf to read:
    default Ceph's own search, ``$CEPH_CONF`` then ``/etc/ceph/ceph.conf``...);
    ``namespace`` (a RADOS namespace inside the pool, so registries can share one).
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        p = ParameterReader("rados", params, KNOWN)
        self.pool = p.required("poolname")
        self.username = p.string("username")
        if self.username.startswith("client."):
            raise p.fail("username", "give the user without its 'client.' type (e.g. admin)")
        self.chunk_size = p.integer("chunksize", DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
        self.conffile = p.string("conffile")
        self.namespace = p.string("namespace")
        p.check_unknown()
