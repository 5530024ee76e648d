"""Ceph RADOS driver (``storage.rados``), on librados through Debian's ``python3-rados``.

Parameters (distribution's keys)
    ``poolname`` (required); ``username`` (the Ceph user, without ``client.``; librados'
    default ``admin`` when empty); ``chunksize`` (bytes per RADOS object of a file's
    data, default 4 MiB). dockyard additions: ``conffile`` (the ceph.conf with the
    monitors and keyring; default Ceph's own search: ``$CEPH_CONF``, then
    ``/etc/ceph/ceph.conf``...) and ``namespace`` (a RADOS namespace in the pool, so
    several registries, or test runs, share one pool without seeing each other).

Layout, as distribution's rados driver kept it
    A file's data is striped over objects of ``chunksize`` bytes named
    ``<oid>.0``, ``<oid>.1``... where ``oid`` is an opaque random id; the first stripe's
    xattrs hold the file's total ``size``, its ``stripe`` size (so a later change of
    ``chunksize`` does not break files already written), ``mtime`` and ``owner`` (the
    name whose removal removes the stripes; see Atomicity). The directory
    hierarchy lives in omaps: one object ``dir:<path>`` per virtual directory, the root
    ``dir:/`` included, whose omap maps each child's name to ``/`` (a subdirectory) or to
    a file's oid. ``list`` reads one omap; ``move`` is an omap update in the destination
    directory and one in the source's, the data stays where it is. Paths are those of
    every other driver (distribution's layout under ``/docker/registry/v2``).

Atomicity
    ``put_content`` writes the new bytes under a new oid, then swaps the name's omap
    entry (an omap compare-and-set, retried if another writer won), then removes the old
    stripes: a reader sees the old or the new file. A writer writes in place, and its
    ``close``/``commit`` sets the ``size`` xattr: bytes past the last saved size (a
    request killed mid-chunk) do not count, and the next ``writer(path, size)`` -- in
    any process or instance -- overwrites them; ``writer(path, offset)`` below the size
    saves the smaller size first, then truncates the stripes. ``move`` makes the
    destination the stripes' ``owner`` first, then names them there, then removes the
    source's name: a process killed between the two omap updates leaves both names on
    the stripes, and removing the source (an upload's directory, cleaned up or purged)
    then leaves them to the destination; the source's name is then no file (not found,
    not listed), so nothing writes the destination's data through it. Missing
    directories are linked top-down, each once its parent is listed, so a kill between
    two links never leaves a directory listed under one that is not (the walk would
    pass it by). Directories are never removed when they become empty (as on a
    filesystem, an empty directory stays); a directory ``delete`` removes the tree, each
    directory's object (its names) before the stripes of its files: a kill there leaves
    stripes no name refers to, never a name on stripes that are gone.

Threads
    librados blocks, so every operation runs in a worker thread (librados is
    thread-safe); the connection is opened on first use in each process.

Bindings
    ``rados`` is Ceph's Python module, not on PyPI: ``apt-get install python3-rados``.
    A Python other than Debian's (a venv, pyenv) of the same version loads Debian's
    build from ``/usr/lib/python3/dist-packages`` by file when ``import rados`` fails,
    without putting that directory on its path; otherwise the error says what to install.
"""

from dockyard.storage.drivers.rados._driver import RadosDriver
from dockyard.storage.drivers.rados._params import RadosParameters
from dockyard.storage.drivers.rados._pool import import_rados

__all__ = ["RadosDriver", "RadosParameters", "import_rados"]
