"""Offline jobs over the storage layout: garbage collection, upload purging."""
