"""The registry services: namespaces, repositories and their policies."""
