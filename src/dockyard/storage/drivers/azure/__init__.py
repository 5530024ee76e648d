"""Azure Blob Storage driver (``storage.azure``), on ``azure-storage-blob``'s asyncio client.

Parameters (distribution's keys)
    ``accountname``, ``accountkey``, ``container`` (required); ``realm`` (default
    ``core.windows.net``: the service is ``https://<accountname>.blob.<realm>``) or
    ``serviceurl`` (any endpoint, e.g. ``http://127.0.0.1:10000/devstoreaccount1`` for
    Azurite); ``connectionstring`` instead of the account name and key;
    ``credentials`` with ``type: shared_key`` (other types need Azure AD and are
    refused at start); ``rootdirectory`` (a prefix inside the container);
    ``copy_status_poll_max_retry`` and ``copy_status_poll_delay`` (how long ``move``
    waits for a server-side copy). The container is created if it does not exist,
    as distribution 2.8 does.

Layout
    Path ``/a/b`` is blob ``<rootdirectory>/a/b`` (``a/b`` without a root
    directory), exactly as distribution names its blobs, so both share a container.
    Directories are prefixes.

Uploads across requests and instances
    Upload data is a *block blob*. ``write`` stages blocks of up to 4 MiB (Put
    Block) as the bytes stream in -- one block in flight while the next fills, so
    memory stays at two blocks. ``close`` (the end of every PATCH) commits the
    block list (Put Block List): the blob then holds exactly the bytes written so
    far, ``stat`` reports that size and any instance continues it. Put Block List
    is atomic, so a reader sees the previous or the new list, never a torn one;
    blocks a crashed request staged but never committed are invisible and dropped
    by Azure at the next commit (or after 7 days). A request that continues at
    ``offset`` reads the committed block list (Get Block List: ids and sizes),
    keeps it, stages new blocks and commits ``old + new``: nothing already stored
    is read back or copied. ``writer(path, offset)`` with ``offset`` below the
    size cuts the list at ``offset``: whole blocks past it are dropped, the one
    block that straddles it is re-staged with its head only (at most one block is
    read back). ``commit`` commits like ``close``; the blob is then complete and
    ``move`` copies it server-side (Copy Blob from a SAS URL of the source, polled
    until done) and deletes the source.

    Why not append blobs, as distribution does: an append blob cannot be cut
    back to an acknowledged offset, and a committed block list is the same
    durable, visible, resumable state with one round trip per PATCH. An upload
    that distribution began (an append blob; the ``_state`` tokens are
    interchangeable) is continued here with Append Block, as distribution would;
    it cannot be cut back. The other way round, distribution 2.8 cannot append to
    an upload dockyard began: do not let one upload cross between the two.

    A committed block blob may have at most 50,000 blocks. Each PATCH adds at least
    one; when a blob already has ``COALESCE_AFTER`` blocks and its last block is
    short, the next writer reads that short block back and restages it merged with
    new data, so clients sending tiny chunks still reach the size limit of 4 MiB
    blocks (about 195 GiB).

Redirects
    Unless ``storage.redirect.disable`` is set, ``redirect_url`` answers GET and
    HEAD with the blob URL and a read-only SAS valid for 20 minutes (distribution's
    ``URLFor``), signed locally with the account key.

Modules
    ``_params`` reads ``storage.azure``; ``_container`` is the client, the blob names,
    the error mapping and ``delete``; ``_writer`` the block writer (and the append
    writer for distribution's uploads) and how a blob is found again to be continued;
    ``_driver`` the rest of the contract.
"""

from dockyard.storage.drivers.azure._driver import AzureDriver
from dockyard.storage.drivers.azure._params import AzureParameters

__all__ = ["AzureDriver", "AzureParameters"]
