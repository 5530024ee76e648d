"""dockyard: a container image registry compatible with CNCF distribution."""

__version__ = "0.1.0"
__all__ = ["__version__"]
