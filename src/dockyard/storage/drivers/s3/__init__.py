"""S3 driver (``storage.s3``): any S3-compatible object store, through aiobotocore.

Keys
    The same as distribution's s3-aws driver: path ``/a/b`` is key
    ``<rootdirectory>/a/b`` without a leading slash (``a/b`` when there is no
    root directory), so a bucket written by ``docker-registry`` is served
    unchanged and the other way round. Directories are key prefixes.

Writers: one multipart upload per file, kept across requests and instances
    A file being written is an in-progress multipart upload (MPU) on its key;
    its size is the sum of its parts. Parts are ``chunksize`` bytes, buffered in
    memory by the object stores' ``PartWriter`` (one part uploading while the next
    fills), except the last one uploaded by ``close``, which may be small.
    ``writer(path, offset)`` finds the MPU again (ListMultipartUploads +
    ListParts) and goes on; ``commit`` completes it.

    S3 wants every part but the last to be at least 5 MiB, so appending after a
    small last part starts over, as distribution does: complete the MPU (the
    object now holds the file), start a new one, and make the object its first
    part, server-side with UploadPartCopy when it is at least 5 MiB, else read
    back (under 5 MiB) into the part buffer; the object is deleted once the new
    MPU holds its bytes. ``writer(path, offset)`` below the current size cuts the
    excess: the MPU is completed with the parts up to the one holding byte
    ``offset - 1`` (done, at a part boundary); a longer object is then cut by
    UploadPartCopy of ``bytes=0-(offset-1)`` into a new MPU (>= 5 MiB), or by
    reading those bytes back into a PutObject (< 5 MiB).

    A closed, uncommitted file has a size (``stat``) and can be continued, but
    cannot be read: S3 serves no bytes of an in-progress MPU (``FileWriter``
    promises reads only after ``commit``).

    What a path holds, as ``writer`` sees it: the MPU's parts when it has any;
    otherwise the object; otherwise (an MPU without parts) nothing yet. Between
    the steps above a crash can leave both an object and an MPU; the MPU wins.

Requests to the object store (concurrent ones count once in latency)
    ``stat`` of a file: 1 (HeadObject); otherwise HeadObject, then ListObjectsV2 and
    ListMultipartUploads at once (3, +1 ListParts for a file being written).
    ``get_content``/``put_content``: 1. ``move``: HeadObject, CopyObject, DeleteObject
    up to ``multipartcopythresholdsize``, else one UploadPartCopy per
    ``multipartcopychunksize`` (at most ``multipartcopymaxconcurrency`` at once) between
    Create and CompleteMultipartUpload. ``writer(path, 0)``: ListMultipartUploads and
    DeleteObject at once; ``writer(path, size)``: ListMultipartUploads + ListParts
    (+ HeadObject for a committed file). ``write``: one UploadPart per ``chunksize``;
    ``close``: one for the rest; ``commit``: CompleteMultipartUpload, or a single
    PutObject for a file that one writer wrote in under ``chunksize``. Redirect URLs are
    signed locally (no request). Measured through the registry (moto's log): a blob
    HEAD costs 2 (the repository's link, HeadObject), a redirected blob GET 2.

Errors
    NoSuchKey/404 become :class:`PathNotFound`; everything else (connection
    failures, timeouts, 5xx, throttling, access denied) :class:`StorageError`,
    which the HTTP layer answers with 503 and ``Retry-After``.

Modules
    ``_params`` reads ``storage.s3``; ``_bucket`` is the client, the keys and the
    single S3 requests (with the error mapping); ``_writer`` the multipart writer and
    how a file is found again to be continued; ``_driver`` the rest of the contract.
"""

from dockyard.storage.drivers.s3._driver import READ_CHUNK, S3Driver
from dockyard.storage.drivers.s3._params import MIN_CHUNK_SIZE, S3Parameters

__all__ = ["MIN_CHUNK_SIZE", "READ_CHUNK", "S3Driver", "S3Parameters"]
