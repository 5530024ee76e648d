"""Blob descriptor caches (``storage.cache.blobdescriptor``): in-memory or Redis."""
