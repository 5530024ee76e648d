"""Google Cloud Storage driver (``storage.gcs``), on ``gcloud-aio-storage`` (asyncio).

Parameters (distribution's keys)
    ``bucket`` (required); ``keyfile`` (a service account JSON key file) or
    ``credentials`` (the same key as a mapping), else Google's application default
    credentials; ``rootdirectory`` (a prefix inside the bucket); ``chunksize``
    (bytes per uploaded part, a multiple of 256 KiB, default 16 MiB);
    ``maxconcurrency`` (requests in flight per process, default 50); ``useragent``.
    dockyard addition: ``endpoint`` (e.g. ``http://127.0.0.1:4443``) talks to a GCS
    emulator without authentication; the ``STORAGE_EMULATOR_HOST`` environment
    variable, which Google's clients and distribution honour, does the same.

Layout
    Path ``/a/b`` is object ``<rootdirectory>/a/b``, as distribution names it, so
    both can share a bucket. Directories are prefixes.

Uploads across requests and instances
    GCS objects are immutable, so upload data is kept as *parts* -- ordinary
    objects ``<key>~parts/<uuid>`` (``~`` never occurs in a registry path, so they
    cannot collide with one and ``list``/``walk`` hide them) -- and the object at
    ``<key>`` itself is a small *part list*: content type
    ``application/x-dockyard-upload-parts``, a JSON body naming the parts in order
    with their sizes, and the total size in its ``dockyard-upload-size`` metadata.

    ``write`` uploads a part whenever ``chunksize`` bytes have gathered (one part in
    flight while the next fills). ``close`` (end of every PATCH) uploads what is
    left as a last part and replaces the part list in one single-request upload,
    which GCS makes atomic: any instance then sees the new size in ``stat`` (from
    the metadata, no body read), can ``reader`` the bytes (streamed part by part)
    and can continue with ``writer(path, size)``, which reads the part list (one
    small GET) and appends parts. Parts a crashed request uploaded but never listed
    are ignored and removed with the upload. ``writer(path, offset)`` below the size
    keeps the parts wholly before ``offset`` and re-uploads the head of the one
    part that straddles it (at most ``chunksize`` bytes read back): the next
    ``close`` lists exactly ``offset`` bytes. ``commit`` composes the parts into
    ``<key>`` server-side (Compose, 32 sources per call, in a tree when there are
    more), which atomically replaces the part list with the complete object, then
    deletes the parts; ``move`` is a server-side rewrite plus delete.

    Why not resumable upload sessions (distribution's way): bytes accepted by a
    session cannot be taken back, so a chunk that fails half-way could not be cut
    off at the acknowledged offset; and a session's data cannot be read before it
    is finalized.

    GCS allows about one update per second of one object name: the part list of
    an upload changes once per PATCH, so rate-limit answers (429) and 5xx are
    retried with exponential backoff.

Redirects
    Unless ``storage.redirect.disable`` is set, and given a service account key
    (``keyfile``/``credentials``), GET and HEAD are redirected to a V4 signed URL
    valid for 20 minutes, as distribution does; without a key, blobs are served
    through the registry.

Modules
    ``_params`` reads ``storage.gcs``; ``_signing`` makes V4 signed URLs; ``_bucket`` is
    the client, the object keys, requests with their retries and errors, part lists
    and ``delete``; ``_writer`` the part writer and how an upload is found again to be
    continued; ``_driver`` the rest of the contract.
"""

from dockyard.storage.drivers.gcs._bucket import PARTS_SUFFIX, SESSION_CONTENT_TYPE
from dockyard.storage.drivers.gcs._driver import GCSDriver
from dockyard.storage.drivers.gcs._params import GCSParameters
from dockyard.storage.drivers.gcs._signing import sign_url_v4

__all__ = ["PARTS_SUFFIX", "SESSION_CONTENT_TYPE", "GCSDriver", "GCSParameters", "sign_url_v4"]
