"""Offline maintenance of a registry's storage: garbage collection, purging, verification."""
