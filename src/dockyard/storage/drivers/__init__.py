"""Storage drivers: bytes and paths only."""
